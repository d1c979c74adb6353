//! `Accumulation::matmul` against the literal reference of
//! `tests/matmul/gen_matmul.py` (products, chunk sums and running sums
//! rounded one addition at a time, its own float/fixed rounding and random
//! draws), bit for bit, for every rounding mode, on both implementations
//! (native and tensor) and through a linear layer's autograd node for the
//! forward product and both gradient products; and its errors.

use swalp_core::hook::shared_rng;
use swalp_core::matmul::{Accumulation, AccumulationError, CpuKernel, LayerArithmetic, Layers};
use swalp_core::tch::{nn, nn::Module, Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer};
use swalp_formats as _;

fn quantizer(spec: &str) -> Quantizer {
    spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn optional(case: &toml::Table, key: &str, none: &str) -> Option<Quantizer> {
    match case[key].as_str() {
        Some(s) if s == none => None,
        Some(s) => Some(quantizer(s)),
        None => panic!("{key} is a string"),
    }
}

fn matrix(case: &toml::Table, key: &str, rows: i64, cols: i64) -> Tensor {
    let bits: Vec<f32> = case[key]
        .as_array()
        .expect("an array of f32 bit patterns")
        .iter()
        .map(|v| f32::from_bits(v.as_integer().expect("an integer") as u32))
        .collect();
    Tensor::from_slice(&bits).view([rows, cols])
}

#[test]
fn matmul_equals_the_literal_reference_bit_for_bit() {
    let text = include_str!("matmul/vectors.toml");
    let vectors: toml::Table = toml::from_str(text).expect("vectors parse");
    let cases = vectors["case"].as_array().expect("cases");
    assert_eq!(cases.len(), 49);
    for case in cases {
        let case = case.as_table().expect("a case is a table");
        let name = case["name"].as_str().unwrap_or("?");
        let int = |key: &str| case[key].as_integer().expect("an integer");
        let (m, k, n) = (int("m"), int("k"), int("n"));
        let chunk = case["chunk"].as_integer().map(|c| c as usize);
        let acc = Accumulation::new(
            optional(case, "product", "none"),
            quantizer(case["accumulator"].as_str().expect("a spec")),
            chunk,
            optional(case, "chunk_accumulator", "f32"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            acc.has_native(),
            "{name}: built-in formats have a native kernel"
        );
        let (a, b) = (matrix(case, "a", m, k), matrix(case, "b", k, n));
        let seed = int("seed") as u64;
        let native = acc
            .matmul(&a, &b, &mut QuantRng::new(seed))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tensor = acc
            .matmul_tensor(&a, &b, &mut QuantRng::new(seed))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(native.kind(), Kind::Float, "{name}");
        assert_eq!(bits(&native), expected(case, "expected"), "{name}: native");
        assert_eq!(bits(&tensor), expected(case, "expected"), "{name}: tensor");
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1))
        .expect("f32")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn expected(case: &toml::Table, key: &str) -> Vec<u32> {
    case[key]
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_integer().expect("an integer") as u32)
        .collect()
}

#[test]
fn a_linear_layer_computes_forward_and_both_gradients_as_the_reference() {
    let text = include_str!("matmul/vectors.toml");
    let vectors: toml::Table = toml::from_str(text).expect("vectors parse");
    let cases = vectors["layer"].as_array().expect("layer cases");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let case = case.as_table().expect("a case is a table");
        let name = case["name"].as_str().unwrap_or("?");
        let int = |key: &str| case[key].as_integer().expect("an integer");
        let (batch, inputs, outputs) = (int("batch"), int("inputs"), int("outputs"));
        let text = case["arithmetic"].as_str().expect("text");
        // As given (the native kernel), then with every quantizer on the
        // tensor backend (the tensor implementation).
        for text in [
            text.to_string(),
            text.replace("rounding =", "backend = \"tensor\", rounding ="),
        ] {
            let table: toml::Table = toml::from_str(&text).expect("arithmetic");
            let arithmetic = LayerArithmetic::from_table(&table).unwrap_or_else(|e| panic!("{e}"));
            let native = arithmetic
                .forward
                .as_ref()
                .is_some_and(Accumulation::has_native);
            assert_eq!(native, !text.contains("tensor"), "{name}");
            let name = format!("{name} ({})", if native { "native" } else { "tensor" });
            let vs = nn::VarStore::new(Device::Cpu);
            let config = nn::LinearConfig {
                bias: false,
                ..Default::default()
            };
            let layers = Layers::new(&arithmetic, shared_rng(int("seed") as u64));
            let fc = layers.linear(nn::linear(vs.root() / "fc", inputs, outputs, config));
            let mut ws = fc.inner().ws.shallow_clone();
            tch::no_grad(|| ws.copy_(&matrix(case, "w", outputs, inputs)));
            let x = matrix(case, "x", batch, inputs).set_requires_grad(true);
            let y = fc.forward(&x);
            assert_eq!(bits(&y.detach()), expected(case, "y"), "{name}: y");
            // d(sum(y · g))/dy = g exactly.
            (&y * matrix(case, "g", batch, outputs))
                .sum(Kind::Float)
                .backward();
            assert_eq!(bits(&x.grad()), expected(case, "grad_x"), "{name}: dL/dx");
            let grad_w = fc.inner().ws.grad();
            assert_eq!(bits(&grad_w), expected(case, "grad_w"), "{name}: dL/dW");
        }
    }
}

/// The native kernel equals the tensor implementation on larger products
/// than the reference's, for every per-element built-in, every rounding,
/// scales and chunk lengths, with signs, zeros and values past the formats'
/// ranges.
#[test]
fn the_native_kernel_equals_the_tensor_implementation() {
    tch::manual_seed(7);
    let (m, k, n) = (19, 70, 23);
    let a = Tensor::randn([m, k], (Kind::Float, Device::Cpu)) * 4.0;
    let b = Tensor::randn([k, n], (Kind::Float, Device::Cpu)).relu() * 0.5;
    let formats = [
        (r#"format = "fp8_e5m2""#, r#"format = "fp16""#),
        (r#"format = "fp8_e4m3""#, r#"format = "bfloat16""#),
        (
            r#"format = "float", exp = 4, man = 3, subnormals = false"#,
            r#"format = "float", exp = 5, man = 6"#,
        ),
        (
            r#"format = "fixed", wl = 8, fl = 4"#,
            r#"format = "fixed", wl = 12, fl = 5, scale = 0.5"#,
        ),
    ];
    let roundings = [
        r#""nearest-even""#,
        r#""nearest-away""#,
        r#""toward-zero""#,
        r#""down""#,
        r#""up""#,
        r#""stochastic""#,
        "{ stochastic_bits = 8 }",
    ];
    let mut checked = 0;
    for (product, accumulator) in formats {
        for rounding in roundings {
            let spec = |f: &str| quantizer(&format!("{{ {f}, rounding = {rounding} }}"));
            for (chunk, chunk_acc) in [
                (None, None),
                (Some(1), None),
                (Some(8), None),
                (Some(16), Some(spec(accumulator))),
            ] {
                let acc =
                    Accumulation::new(Some(spec(product)), spec(accumulator), chunk, chunk_acc)
                        .unwrap_or_else(|e| panic!("{e}"));
                let mut native_rng = QuantRng::new(3);
                let mut tensor_rng = QuantRng::new(3);
                let native = acc.matmul(&a, &b, &mut native_rng).unwrap();
                let tensor = acc.matmul_tensor(&a, &b, &mut tensor_rng).unwrap();
                let what = format!("{product} / {accumulator} / {rounding} / chunk {chunk:?}");
                assert_eq!(bits(&native), bits(&tensor), "{what}");
                assert_eq!(native_rng, tensor_rng, "{what}: the same streams taken");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 7 * 4);
}

#[test]
fn chunking_undoes_swamping_in_a_long_sum() {
    // 4096 equal products 2^-11: fp16 stops at 1 (1 + 2^-11 ties to 1),
    // chunks of 64 summed in f32 keep every product.
    let a = Tensor::full([1, 4096], 1.0 / 2048.0, (Kind::Float, Device::Cpu));
    let b = Tensor::ones([4096, 1], (Kind::Float, Device::Cpu));
    let fp16 = quantizer(r#"{ format = "fp16" }"#);
    let sum = |chunk| {
        Accumulation::new(None, fp16.clone(), chunk, None)
            .unwrap()
            .matmul(&a, &b, &mut QuantRng::new(0))
            .unwrap()
            .double_value(&[0, 0])
    };
    assert_eq!(sum(None), 1.0);
    assert_eq!(sum(Some(1)), 1.0);
    assert_eq!(sum(Some(64)), 2.0);
    // Stochastic rounding is unbiased: the unchunked fp16 sum lands near 2.
    let sr = Accumulation::new(
        None,
        quantizer(r#"{ format = "fp16", rounding = "stochastic" }"#),
        None,
        None,
    )
    .unwrap()
    .matmul(&a, &b, &mut QuantRng::new(1))
    .unwrap()
    .double_value(&[0, 0]);
    assert!((sr - 2.0).abs() < 0.1, "{sr}");
}

#[test]
fn formats_that_cannot_round_a_sum_are_refused_with_the_role() {
    let fp16 = quantizer(r#"{ format = "fp16" }"#);
    let bfp = quantizer(r#"{ format = "bfp", wl = 8, block = "tensor" }"#);
    let err = Accumulation::new(None, bfp.clone(), None, None).unwrap_err();
    assert_eq!(
        err,
        AccumulationError::NotPerElement {
            role: "accumulator",
            format: "bfp".into()
        }
    );
    assert!(err.to_string().contains("per-element format"), "{err}");
    let err = Accumulation::new(Some(bfp), fp16.clone(), None, None).unwrap_err();
    assert!(matches!(
        err,
        AccumulationError::NotPerElement {
            role: "product",
            ..
        }
    ));
    assert_eq!(
        Accumulation::new(None, fp16.clone(), Some(0), None).unwrap_err(),
        AccumulationError::ZeroChunk
    );
    let rotated = quantizer(r#"{ format = "fp16", rht = 16 }"#);
    assert_eq!(
        Accumulation::new(None, fp16.clone(), Some(4), Some(rotated)).unwrap_err(),
        AccumulationError::Rotated {
            role: "chunk_accumulator"
        }
    );
    // A chunk longer than K is one chunk.
    let acc = Accumulation::new(None, fp16, Some(1 << 20), None).unwrap();
    let y = acc
        .matmul(
            &Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
            &Tensor::ones([3, 2], (Kind::Float, Device::Cpu)),
            &mut QuantRng::new(0),
        )
        .unwrap();
    assert_eq!(Vec::<f32>::try_from(y.flatten(0, -1)).unwrap(), [3.0; 4]);
    let err = acc
        .matmul(
            &Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
            &Tensor::ones([2, 2], (Kind::Float, Device::Cpu)),
            &mut QuantRng::new(0),
        )
        .unwrap_err();
    assert!(err.to_string().contains("[2, 3] and [2, 2]"), "{err}");
}

/// A convolution through the arithmetic (im2col, one product, the
/// gradients through the node and col2im) equals libtorch's `conv2d` and
/// its gradients exactly where every sum is exact: small integers, an
/// accumulator wide enough to hold them.
#[test]
fn a_convolution_through_the_node_equals_libtorch_where_sums_are_exact() {
    let table: toml::Table =
        toml::from_str(r#"accumulator = { format = "fixed", wl = 24, fl = 0 }"#).expect("toml");
    let arithmetic = LayerArithmetic::from_table(&table).unwrap_or_else(|e| panic!("{e}"));
    let layers = Layers::new(&arithmetic, shared_rng(0));
    let vs = nn::VarStore::new(Device::Cpu);
    let config = nn::ConvConfig {
        stride: 2,
        padding: 1,
        ..Default::default()
    };
    let conv = layers.conv2d(nn::conv2d(vs.root() / "conv", 3, 4, 3, config), 2, 1);
    let integers = |shape: &[i64]| Tensor::randint_low(-3, 4, shape, (Kind::Float, Device::Cpu));
    tch::manual_seed(11);
    let (mut w, mut b) = (
        conv.inner().ws.shallow_clone(),
        conv.inner().bs.as_ref().expect("a bias").shallow_clone(),
    );
    tch::no_grad(|| {
        w.copy_(&integers(&[4, 3, 3, 3]));
        b.copy_(&integers(&[4]));
    });
    let x = integers(&[2, 3, 7, 6]).set_requires_grad(true);
    let g = integers(&[2, 4, 4, 3]);
    let y = conv.forward(&x);
    (&y * &g).sum(Kind::Float).backward();
    let (gx, gw, gb) = (x.grad().copy(), w.grad().copy(), b.grad().copy());

    let x2 = x.detach().copy().set_requires_grad(true);
    let w2 = w.detach().copy().set_requires_grad(true);
    let b2 = b.detach().copy().set_requires_grad(true);
    let y2 = x2.conv2d(&w2, Some(&b2), [2, 2], [1, 1], [1, 1], 1);
    (&y2 * &g).sum(Kind::Float).backward();
    assert_eq!(y.size(), [2, 4, 4, 3]);
    assert!(y.detach().equal(&y2.detach()), "forward");
    assert!(gx.equal(&x2.grad()), "input gradient");
    assert!(gw.equal(&w2.grad()), "weight gradient");
    assert!(gb.equal(&b2.grad()), "bias gradient");
    // And the arithmetic is really in use: an fp8 accumulator changes it.
    let table: toml::Table =
        toml::from_str(r#"accumulator = { format = "fp8_e4m3" }"#).expect("toml");
    let fp8 = Layers::new(&LayerArithmetic::from_table(&table).unwrap(), shared_rng(0));
    let conv8 = fp8.conv2d(nn::conv2d(vs.root() / "conv8", 3, 4, 3, config), 2, 1);
    let inner = conv8.inner();
    let exact = x
        .detach()
        .conv2d(&inner.ws, inner.bs.as_ref(), [2, 2], [1, 1], [1, 1], 1);
    assert!(!conv8.forward(&x).detach().equal(&exact.detach()));
}

/// On a GPU, the tensor implementation (what CUDA tensors take) equals the
/// native CPU kernel bit for bit, and so does a linear layer's forward and
/// backward. Part of `scripts/gpu-check`; says why it is skipped elsewhere.
#[test]
fn gpu_matmul_on_cuda_equals_the_native_kernel() {
    if !tch::Cuda::is_available() {
        println!("skipped: no CUDA device");
        return;
    }
    let cuda = Device::Cuda(0);
    tch::manual_seed(5);
    let a = Tensor::randn([33, 100], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([100, 17], (Kind::Float, Device::Cpu));
    for rounding in [r#""nearest-even""#, r#""stochastic""#] {
        let spec = |f: &str| quantizer(&format!("{{ format = {f:?}, rounding = {rounding} }}"));
        for chunk in [None, Some(1), Some(16)] {
            let acc = Accumulation::new(Some(spec("fp8_e5m2")), spec("fp16"), chunk, None)
                .unwrap_or_else(|e| panic!("{e}"));
            let cpu = acc.matmul(&a, &b, &mut QuantRng::new(9)).unwrap();
            let gpu = acc
                .matmul(
                    &a.to_device(cuda),
                    &b.to_device(cuda),
                    &mut QuantRng::new(9),
                )
                .unwrap();
            assert_eq!(gpu.device(), cuda);
            assert_eq!(
                bits(&cpu),
                bits(&gpu.to_device(Device::Cpu)),
                "{rounding} {chunk:?}"
            );
        }
    }
    let table: toml::Table = toml::from_str(
        r#"product = { format = "fp8_e5m2", rounding = "stochastic" }
           accumulator = { format = "fp16" }
           chunk = 8"#,
    )
    .expect("toml");
    let arithmetic = LayerArithmetic::from_table(&table).unwrap_or_else(|e| panic!("{e}"));
    let w0 = Tensor::randn([17, 100], (Kind::Float, Device::Cpu)) * 0.1;
    let grads = |device: Device| {
        let vs = nn::VarStore::new(device);
        let fc = Layers::new(&arithmetic, shared_rng(4)).linear(nn::linear(
            vs.root() / "fc",
            100,
            17,
            Default::default(),
        ));
        let (mut w, mut bias) = (
            fc.inner().ws.shallow_clone(),
            fc.inner().bs.as_ref().expect("a bias").shallow_clone(),
        );
        tch::no_grad(|| {
            w.copy_(&w0);
            let _ = bias.zero_();
        });
        let x = a.to_device(device).set_requires_grad(true);
        let y = fc.forward(&x);
        y.sum(Kind::Float).backward();
        [y.detach(), x.grad(), fc.inner().ws.grad()].map(|t| bits(&t.to_device(Device::Cpu)))
    };
    assert_eq!(grads(Device::Cpu), grads(cuda));
}

/// A small deterministic generator (xorshift64*) of operands that make the
/// roundings' hard cases common: few significand bits (products on and
/// between grid midpoints), full ones, exponents from below every grid's
/// smallest step to beyond its largest value, signed zeros.
struct HardOperands(u64);

impl HardOperands {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `narrow`: magnitudes below 8, whose products (below 64) lie within
    /// the range of most product formats, where the lanes skip the limits.
    fn operand(&mut self, narrow: bool) -> f32 {
        let sign = if self.below(2) == 0 { 1.0 } else { -1.0 };
        // Mostly products from far below to just beyond every grid's
        // range, sometimes far beyond (overflow, infinities, NaN).
        let exponent = match self.below(16) {
            _ if narrow => self.below(23) as i32 - 20,
            0 => self.below(44) as i32 - 26,
            // Products beyond f32 (the f32 chunk sums of exact products
            // overflow).
            1 if self.below(8) == 0 => 50 + self.below(20) as i32,
            _ => self.below(26) as i32 - 20,
        };
        // (1 ± 2^-13) · m(1 ∓ 2^-13) = m(1 − 2^-26): within half an f32
        // step of a grid midpoint m, on the side the tie does not go to;
        // only a product rounded once lands on the right neighbour.
        let nudge = if self.below(2) == 0 { 1.0 } else { -1.0 } * (-13f32).exp2();
        let significand = match self.below(10) {
            0 => return 0.0 * sign,
            1..=4 => 1.0 + self.below(8) as f32 / 8.0,
            5 => 1.0 + self.below(1 << 12) as f32 / 4096.0,
            6 => 1.0 + nudge,
            7 => {
                let bits = 2 + self.below(3) as i32;
                let midpoint =
                    1.0 + (2 * self.below(1 << (bits - 1)) + 1) as f32 * (-bits as f32).exp2();
                midpoint - midpoint * nudge
            }
            _ => 1.0 + (self.next() >> 41) as f32 / (1u64 << 23) as f32,
        };
        sign * significand * (exponent as f32).exp2()
    }

    fn matrix(&mut self, rows: i64, cols: i64, narrow: bool) -> Tensor {
        let values: Vec<f32> = (0..rows * cols).map(|_| self.operand(narrow)).collect();
        Tensor::from_slice(&values).view([rows, cols])
    }
}

/// Every arithmetic the `f32` lanes accept gives the `f64` kernel's bits,
/// on operands built to hit ties, overflow, underflow and signed zeros, in
/// shapes that leave partial tiles both ways.
#[test]
fn the_f32_lanes_equal_the_f64_kernel() {
    let products = [
        None,
        Some(r#"format = "fp8_e5m2""#),
        Some(r#"format = "fp8_e4m3""#),
        Some(r#"format = "float", exp = 3, man = 1"#),
        Some(r#"format = "float", exp = 4, man = 3, overflow = "saturate""#),
        Some(r#"format = "fixed", wl = 8, fl = 4"#),
        Some(r#"format = "fp16""#),
        Some(r#"format = "bfloat16""#),
    ];
    let accumulators = [
        r#"format = "fp16""#,
        r#"format = "fp8_e5m2""#,
        r#"format = "float", exp = 6, man = 5"#,
        r#"format = "fixed", wl = 11, fl = 5"#,
        r#"format = "fixed", wl = 16, fl = 8"#,
        // 15 bits: a sum formed in f32 and rounded again could differ from
        // the sum rounded once, so the lanes must refuse it.
        r#"format = "float", exp = 5, man = 14"#,
        r#"format = "bfloat16""#,
    ];
    let mut draws = HardOperands(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for product in products {
        for accumulator in accumulators {
            for chunk in [None, Some(1), Some(3), Some(8)] {
                for chunk_acc in [None, Some(accumulator), Some(r#"format = "fp16""#)] {
                    if chunk.is_none() && chunk_acc.is_some() {
                        continue;
                    }
                    let spec = |f: &str| quantizer(&format!("{{ {f} }}"));
                    let acc = Accumulation::new(
                        product.map(spec),
                        spec(accumulator),
                        chunk,
                        chunk_acc.map(spec),
                    )
                    .unwrap();
                    let what = format!(
                        "{} / {accumulator} / {chunk:?} / {chunk_acc:?}",
                        product.unwrap_or("exact products")
                    );
                    let mut lanes_taken = false;
                    for draw in 0..12 {
                        let narrow = draw % 2 == 1;
                        let (a, b) = (draws.matrix(7, 29, narrow), draws.matrix(29, 37, narrow));
                        let mut rng = QuantRng::new(0);
                        let Some(fast) =
                            acc.matmul_cpu(&a, &b, &mut rng, CpuKernel::Lanes).unwrap()
                        else {
                            break;
                        };
                        lanes_taken = true;
                        assert_eq!(rng, QuantRng::new(0), "{what}: the lanes take no stream");
                        let slow = acc
                            .matmul_cpu(&a, &b, &mut rng, CpuKernel::F64)
                            .unwrap()
                            .unwrap();
                        let differ = bits(&fast)
                            .iter()
                            .zip(bits(&slow))
                            .position(|(f, s)| *f != s);
                        if let Some(i) = differ {
                            let (f, s) = (
                                fast.view([-1]).double_value(&[i as i64]),
                                slow.view([-1]).double_value(&[i as i64]),
                            );
                            panic!("{what}: element {i} is {f:e} in the lanes, {s:e} in the f64 kernel");
                        }
                    }
                    if lanes_taken {
                        accepted += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
    }
    if !std::arch::is_x86_feature_detected!("avx2") || !std::arch::is_x86_feature_detected!("fma") {
        println!("skipped: the CPU has no AVX2 and FMA, so no product takes the f32 lanes");
        return;
    }
    // Which arithmetics the lanes take (the f64 kernel takes the rest): a
    // change here changes speed and should be deliberate.
    assert_eq!((accepted, refused), (212, 348), "accepted, refused");
}

#[test]
fn the_f32_lanes_leave_non_finite_and_non_f32_operands_to_the_f64_kernel() {
    let acc = Accumulation::new(
        Some(quantizer(r#"{ format = "fp8_e5m2" }"#)),
        quantizer(r#"{ format = "fp16" }"#),
        Some(4),
        None,
    )
    .unwrap();
    let lanes = |a: &Tensor, b: &Tensor| {
        acc.matmul_cpu(a, b, &mut QuantRng::new(0), CpuKernel::Lanes)
            .unwrap()
    };
    let a = Tensor::from_slice(&[1.0f32, 3.0]).view([1, 2]);
    let b = Tensor::from_slice(&[1.0f32, 0.0]).view([2, 1]);
    if lanes(&a, &b).is_none() {
        println!("skipped: the CPU has no AVX2 and FMA, so no product takes the f32 lanes");
        return;
    }
    let infinite = Tensor::from_slice(&[1.0f32, f32::INFINITY]).view([1, 2]);
    assert!(
        lanes(&infinite, &b).is_none(),
        "∞·0 is NaN in f32, the format's infinity in f64"
    );
    assert!(
        lanes(&a.to_kind(Kind::Double), &b).is_none(),
        "f64 operands"
    );
    // Through `matmul`, such products still run (on the f64 kernel).
    let y = acc.matmul(&infinite, &b, &mut QuantRng::new(0)).unwrap();
    assert!(y.double_value(&[0, 0]).is_nan());
}
