//! `Accumulation::matmul` against the literal reference of
//! `tests/matmul/gen_matmul.py` (products, chunk sums and running sums
//! rounded one addition at a time, its own float/fixed rounding and random
//! draws), bit for bit, for every rounding mode; and its errors.

use swalp_core::matmul::{Accumulation, AccumulationError};
use swalp_core::tch::{Device, Kind, Tensor};
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
        let (a, b) = (matrix(case, "a", m, k), matrix(case, "b", k, n));
        let y = acc
            .matmul(&a, &b, &mut QuantRng::new(int("seed") as u64))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(y.kind(), Kind::Float, "{name}");
        let got: Vec<u32> = Vec::<f32>::try_from(y.flatten(0, -1))
            .expect("f32")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let expected: Vec<u32> = case["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .map(|v| v.as_integer().expect("an integer") as u32)
            .collect();
        assert_eq!(got, expected, "{name}");
    }
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
