//! `bfp` reproduces the SWALP seed's `block_quantize`: the formula of
//! REFERENCE.md §1 written out here with plain tensor ops, per block, for
//! nearest (round half to even, as `torch.round`) and stochastic rounding
//! (`floor(i + u)`, fed the same uniform draws swalp uses).

use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{Backend, QuantRng, Quantizer, Rounding};
use swalp_formats as _;

/// The seed's formula on one block, in f64: shared exponent from the block
/// maximum, scale, round, clamp, scale back.
fn seed_block_quantize(block: &Tensor, bits: i64, ebit: i64, uniform: Option<&Tensor>) -> Tensor {
    let max = block.abs().max();
    if f64::try_from(&max).unwrap() == 0.0 {
        return block.copy();
    }
    let e = max
        .log2()
        .floor()
        .clamp(-(1i64 << (ebit - 1)), (1i64 << (ebit - 1)) - 1);
    let i = block * (-&e + (bits - 2) as f64).exp2();
    let i = match uniform {
        Some(u) => (i + u).floor(),
        None => i.round(),
    };
    let i = i.clamp(-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    i * (e - (bits - 2) as f64).exp2()
}

/// Per-slice along dim 0 for tensors of 2+ dims, one block otherwise: the
/// seed's "small-block FC" with block dim B.
fn seed_small_block_fc(x: &Tensor, bits: i64, uniform: Option<&Tensor>) -> Tensor {
    if x.dim() <= 1 {
        return seed_block_quantize(x, bits, 8, uniform);
    }
    let rows: Vec<Tensor> = (0..x.size()[0])
        .map(|r| seed_block_quantize(&x.get(r), bits, 8, uniform.map(|u| u.get(r)).as_ref()))
        .collect();
    Tensor::stack(&rows, 0)
}

fn uniform_draws(seed: u64, shape: &[i64]) -> Tensor {
    // The first stream of QuantRng::new(seed), as swalp's stochastic
    // rounding consumes it: element i's draw over 2^32.
    let stream = QuantRng::new(seed).next_stream();
    stream
        .bits_tensor(shape, Device::Cpu)
        .expect("draws")
        .to_kind(Kind::Double)
        / 2f64.powi(32)
}

fn inputs() -> Vec<Tensor> {
    swalp_core::tch::manual_seed(5);
    let opts = (Kind::Float, Device::Cpu);
    vec![
        Tensor::randn([64], opts) * 0.01,          // a bias
        Tensor::randn([32, 48], opts),             // a linear weight
        Tensor::randn([16, 8, 3, 3], opts) * 1e-3, // a conv weight
        Tensor::randn([10, 20], opts) * Tensor::rand([10, 1], opts).exp2() * 1e4, // rows of different scales
        Tensor::zeros([4, 4], opts),
    ]
}

#[test]
fn nearest_even_matches_the_seed_formula() {
    for wl in [4, 8, 16] {
        let q: Quantizer = format!("{{ format = \"bfp\", wl = {wl}, small_block = \"fc\" }}")
            .parse()
            .unwrap();
        for x in inputs() {
            let expected =
                seed_small_block_fc(&x.to_kind(Kind::Double), wl, None).to_kind(Kind::Float);
            for backend in [Backend::Native, Backend::Tensor] {
                let y = q
                    .clone()
                    .with_backend(backend)
                    .quantize(&x, &mut QuantRng::new(0))
                    .unwrap();
                assert!(y.equal(&expected), "wl {wl} {backend} shape {:?}", x.size());
            }
        }
    }
}

#[test]
fn stochastic_matches_the_seed_formula_with_the_same_draws() {
    for wl in [4, 8] {
        let q: Quantizer = format!("{{ format = \"bfp\", wl = {wl}, small_block = \"fc\" }}")
            .parse()
            .unwrap();
        let q = q.with_rounding(Rounding::STOCHASTIC);
        for x in inputs() {
            let u = uniform_draws(9, &x.size());
            let expected =
                seed_small_block_fc(&x.to_kind(Kind::Double), wl, Some(&u)).to_kind(Kind::Float);
            for backend in [Backend::Native, Backend::Tensor] {
                let y = q
                    .clone()
                    .with_backend(backend)
                    .quantize(&x, &mut QuantRng::new(9))
                    .unwrap();
                assert!(y.equal(&expected), "wl {wl} {backend} shape {:?}", x.size());
            }
        }
    }
}

#[test]
fn activations_use_one_exponent_per_tensor_as_the_seed_does() {
    // The seed's activation quantizer ignores small-block and uses "None":
    // one exponent for any tensor of up to 4 dimensions.
    let q: Quantizer = r#"{ format = "bfp", wl = 8, small_block = "none" }"#
        .parse()
        .unwrap();
    let x = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
    let y = q.quantize(&x, &mut QuantRng::new(0)).unwrap();
    let expected = seed_block_quantize(&x.to_kind(Kind::Double), 8, 8, None).to_kind(Kind::Float);
    assert!(y.equal(&expected));
}
