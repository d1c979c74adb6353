//! SWALP on least squares, from library code alone (no experiment file):
//! the setting of the paper's Theorem 1.
//!
//! A linear model on a `VarStore` is trained with `swalp_core::optim::Sgd`
//! whose gradient, momentum, accumulator and weight are all rounded to 8-bit
//! fixed point (`wl = 8`, `fl = 6`: a step of 1/64) with stochastic rounding.
//! After a burn-in, `swalp_core::swa::Swa` averages the weights after every
//! step. Low-precision SGD stalls at its quantization noise floor; the
//! average keeps approaching the least-squares optimum. The example prints
//! the squared distance to that optimum of both and asserts that the average
//! is clearly closer. Runs in a few seconds on a CPU.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release --example linreg_swalp
//! ```

use swalp_core::hook::shared_rng;
use swalp_core::optim::{OptimQuantizers, Sgd, SgdConfig};
use swalp_core::swa::Swa;
use swalp_core::tch::{nn, nn::Module, Device, Kind, Reduction, Tensor};
use swalp_core::Quantizer;
use swalp_formats as _; // links the built-in formats (`fixed`) into the registry

const DIM: i64 = 16;
const N: i64 = 4096;
const NOISE: f64 = 0.1;
const LR: f64 = 0.02;
const BATCH: i64 = 32;
const EPOCHS: i64 = 24;
const SWA_START: i64 = 4; // epochs of plain low-precision SGD before averaging

/// `[weight, bias]` of the linear layer as one `f64` vector, from named
/// tensors (the model's variables or the SWA average).
fn flat(params: &[(String, Tensor)]) -> Tensor {
    let get = |name: &str| {
        let (_, t) = params
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        t.detach().to_kind(Kind::Double).flatten(0, -1)
    };
    Tensor::cat(&[get("linear.weight"), get("linear.bias")], 0)
}

fn squared_distance(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).square().sum(Kind::Double).double_value(&[])
}

fn main() -> Result<(), swalp_core::Error> {
    // Data: y = x·w* + b* + noise, and the least-squares optimum of the
    // training set, solved in f64 from the normal equations.
    swalp_core::tch::manual_seed(0);
    let opts = (Kind::Double, Device::Cpu);
    let w_true = Tensor::rand([DIM, 1], opts) * 2.0 - 1.0;
    let b_true = Tensor::rand([1], opts) - 0.5;
    let x = Tensor::randn([N, DIM], opts);
    let y = x.matmul(&w_true) + &b_true + Tensor::randn([N, 1], opts) * NOISE;
    let a = Tensor::cat(&[&x, &Tensor::ones([N, 1], opts)], 1);
    let optimum = Tensor::linalg_solve(&a.tr().matmul(&a), &a.tr().matmul(&y), true).squeeze_dim(1);
    let (x, y) = (x.to_kind(Kind::Float), y.to_kind(Kind::Float));

    // The model, starting at zero (on every format's grid).
    let vs = nn::VarStore::new(Device::Cpu);
    let config = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    let model = nn::linear(vs.root() / "linear", DIM, 1, config);

    // Low-precision SGD: 8-bit fixed point, stochastic rounding, everywhere.
    let q: Quantizer =
        r#"{ format = "fixed", wl = 8, fl = 6, rounding = "stochastic" }"#.parse()?;
    let quant = OptimQuantizers {
        weight: Some(q.clone()),
        gradient: Some(q.clone()),
        momentum: Some(q.clone()),
        accumulator: Some(q.clone()),
        grad_scale: 1.0,
    };
    println!("every optimizer point: {q}");
    let rng = shared_rng(0);
    let mut opt = Sgd::from_var_store(&vs, SgdConfig::new(LR), quant, rng.clone())?;

    // The model's own tensors (shallow copies: they follow every step).
    let params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    let mut swa = Swa::new(&params);

    println!(
        "{:>5} {:>12} {:>16} {:>16}",
        "epoch", "train loss", "|w_sgd - w*|^2", "|w_swa - w*|^2"
    );
    let steps_per_epoch = N / BATCH;
    for epoch in 1..=EPOCHS {
        let order = Tensor::randperm(N, (Kind::Int64, Device::Cpu));
        for step in 0..steps_per_epoch {
            let idx = order.narrow(0, step * BATCH, BATCH);
            let (xb, yb) = (x.index_select(0, &idx), y.index_select(0, &idx));
            let loss = model.forward(&xb).mse_loss(&yb, Reduction::Mean);
            opt.zero_grad();
            loss.backward();
            opt.step()?;
            if epoch > SWA_START {
                swa.update(&params, &rng)?;
            }
        }
        if epoch % 4 == 0 {
            let train_loss = swalp_core::tch::no_grad(|| {
                model
                    .forward(&x)
                    .mse_loss(&y, Reduction::Mean)
                    .double_value(&[])
            });
            let sgd = squared_distance(&flat(&params), &optimum);
            let avg = if swa.count() > 0 {
                format!("{:.3e}", squared_distance(&flat(swa.average()), &optimum))
            } else {
                "-".into()
            };
            println!("{epoch:>5} {train_loss:>12.5} {sgd:>16.3e} {avg:>16}");
        }
    }

    // The SGD iterate stays on the 8-bit grid; the average is full precision.
    let on_grid = flat(&params) * 64.0;
    assert!(
        on_grid.equal(&on_grid.round()),
        "weights are multiples of 2^-6"
    );
    let sgd_dist = squared_distance(&flat(&params), &optimum);
    let swa_dist = squared_distance(&flat(swa.average()), &optimum);
    println!("averaged {} iterates", swa.count());
    println!("SGD iterate:   squared distance to the least-squares optimum {sgd_dist:.3e}");
    println!(
        "SWALP average: squared distance to the least-squares optimum {swa_dist:.3e} ({:.1}x closer)",
        sgd_dist / swa_dist
    );
    assert!(
        swa_dist * 5.0 < sgd_dist,
        "the SWALP average should be much closer to the optimum than the SGD iterate"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example end to end; its assertions check what
    /// it claims.
    #[test]
    fn runs() {
        super::main().unwrap();
    }
}
