//! Quantize a model written the usual tch way and train it in low precision.
//!
//! `mlp` below is an ordinary `nn::seq_t()` model that knows nothing about
//! quantization. It is trained three ways on the same synthetic
//! classification data, from the same initial weights:
//!
//! - **full precision**: the model as is, with plain SGD;
//! - **wrapped**: the model untouched, between two `swalp_core::hook::QuantAct`
//!   points, one rounding its input and one rounding its logits on the way
//!   forward and the gradient of the loss on the way back;
//! - **lowered**: the same layers declared through
//!   `swalp_core::lower::QuantSequential` (one line each, tagged with their
//!   kind), lowered to a `SequentialT` with a `QuantAct` after every
//!   activation: activations rounded forward, errors rounded backward.
//!
//! Both quantized models use `swalp_core::optim::Sgd` with weights,
//! gradients, momentum and accumulator in 8-bit block floating point with
//! stochastic rounding. The example prints the training loss of all three
//! every few steps, asserts that each falls to under half its initial value,
//! and prints their test accuracy. Runs in seconds on a CPU.
//!
//! ```text
//! swalp-cli/scripts/with-torch cargo run --release --example quantize_existing_model
//! ```

use swalp_core::hook::{shared_rng, QuantAct, SharedRng};
use swalp_core::lower::{LayerKind, QuantSequential};
use swalp_core::optim::{OptimQuantizers, Sgd, SgdConfig};
use swalp_core::tch::nn::{self, ModuleT};
use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{QuantPair, Quantizer};
use swalp_formats as _; // links the built-in formats (`bfp`) into the registry

const INPUTS: i64 = 16;
const HIDDEN: i64 = 64;
const CLASSES: i64 = 4;
const N_TRAIN: i64 = 2048;
const N_TEST: i64 = 1024;
const BATCH: i64 = 64;
const STEPS: i64 = 100;

/// The existing model, written the usual way.
fn mlp(p: &nn::Path) -> nn::SequentialT {
    nn::seq_t()
        .add(nn::linear(p / "fc1", INPUTS, HIDDEN, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(p / "fc2", HIDDEN, HIDDEN, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(p / "fc3", HIDDEN, CLASSES, Default::default()))
}

/// The same layers through `QuantSequential`: `nn::seq_t()` becomes
/// `QuantSequential::new()` and each layer gets its kind, because a built
/// `SequentialT` cannot be inspected to find its activations.
fn mlp_lowered(p: &nn::Path, pair: QuantPair, rng: SharedRng) -> nn::SequentialT {
    let layers = QuantSequential::new()
        .add(
            LayerKind::Linear,
            nn::linear(p / "fc1", INPUTS, HIDDEN, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(p / "fc2", HIDDEN, HIDDEN, Default::default()),
        )
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(
            LayerKind::Linear,
            nn::linear(p / "fc3", HIDDEN, CLASSES, Default::default()),
        );
    let kinds = [LayerKind::Activation];
    println!(
        "lowered: {} quantization points, one after each activation",
        layers.points_after(&kinds)
    );
    layers.lower(&kinds, pair, rng)
}

/// Inputs and the labels of a random linear teacher.
fn data(teacher: &Tensor, n: i64) -> (Tensor, Tensor) {
    let x = Tensor::randn([n, INPUTS], (Kind::Float, Device::Cpu));
    let y = x.matmul(teacher).argmax(1, false);
    (x, y)
}

/// Mean cross-entropy and accuracy on a whole set, in evaluation mode.
fn evaluate(net: &nn::SequentialT, x: &Tensor, y: &Tensor) -> (f64, f64) {
    swalp_core::tch::no_grad(|| {
        let logits = net.forward_t(x, false);
        let loss = logits.cross_entropy_for_logits(y).double_value(&[]);
        (loss, logits.accuracy_for_logits(y).double_value(&[]))
    })
}

/// A model in training: its variables, network and optimizer.
struct Run {
    name: &'static str,
    _vs: nn::VarStore,
    net: nn::SequentialT,
    opt: Sgd,
    losses: Vec<f64>,
}

fn main() -> Result<(), swalp_core::Error> {
    swalp_core::tch::manual_seed(0);
    let teacher = Tensor::randn([INPUTS, CLASSES], (Kind::Float, Device::Cpu));
    let (x, y) = data(&teacher, N_TRAIN);
    let (x_test, y_test) = data(&teacher, N_TEST);

    // 8-bit block floating point, one exponent per row (per output unit for
    // weights, per example for activations and errors), stochastic rounding.
    let q: Quantizer =
        r#"{ format = "bfp", wl = 8, block = { dim = 0 }, rounding = "stochastic" }"#.parse()?;
    println!("every quantizer: {q}");
    let low_precision = OptimQuantizers {
        weight: Some(q.clone()),
        gradient: Some(q.clone()),
        momentum: Some(q.clone()),
        accumulator: Some(q.clone()),
        grad_scale: 1.0,
    };
    let config = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.05)
    };
    let rng = shared_rng(0);
    let pair = || QuantPair::new(Some(q.clone()), Some(q.clone()));

    let mut runs = Vec::new();
    for name in ["full precision", "wrapped", "lowered"] {
        // The same initial weights for all three.
        swalp_core::tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let (net, quant) = match name {
            "full precision" => (mlp(&vs.root()), OptimQuantizers::full_precision()),
            "wrapped" => {
                let input = QuantAct::from_quantizers(Some(q.clone()), None, rng.clone());
                let output = QuantAct::new(pair(), rng.clone());
                let net = nn::seq_t().add(input).add(mlp(&vs.root())).add(output);
                (net, low_precision.clone())
            }
            _ => (
                mlp_lowered(&vs.root(), pair(), rng.clone()),
                low_precision.clone(),
            ),
        };
        let opt = Sgd::from_var_store(&vs, config, quant, rng.clone())?;
        runs.push(Run {
            name,
            _vs: vs,
            net,
            opt,
            losses: Vec::new(),
        });
    }

    println!(
        "{:>5} {:>15} {:>15} {:>15}   (training loss)",
        "step", runs[0].name, runs[1].name, runs[2].name
    );
    for step in 0..=STEPS {
        let idx = Tensor::randint(N_TRAIN, [BATCH], (Kind::Int64, Device::Cpu));
        let (xb, yb) = (x.index_select(0, &idx), y.index_select(0, &idx));
        if step % 20 == 0 {
            for run in &mut runs {
                run.losses.push(evaluate(&run.net, &x, &y).0);
            }
            let row: Vec<String> = runs
                .iter()
                .map(|r| format!("{:>15.4}", r.losses.last().unwrap()))
                .collect();
            println!("{step:>5} {}", row.join(" "));
        }
        if step == STEPS {
            break;
        }
        for run in &mut runs {
            let loss = run.net.forward_t(&xb, true).cross_entropy_for_logits(&yb);
            run.opt.zero_grad();
            loss.backward();
            run.opt.step()?;
        }
    }

    for run in &runs {
        let (first, last) = (run.losses[0], *run.losses.last().unwrap());
        let accuracy = evaluate(&run.net, &x_test, &y_test).1;
        println!(
            "{:<15} loss {first:.4} -> {last:.4}, test accuracy {:.1}%",
            run.name,
            100.0 * accuracy
        );
        assert!(last < 0.5 * first, "{}: the loss should fall", run.name);
    }
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
