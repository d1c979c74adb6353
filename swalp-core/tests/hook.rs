//! The activation/error hook is a real autograd node: forward applies the
//! activation quantizer, backward the error quantizer, in any graph.

use swalp_core::hook::{shared_rng, QuantAct};
use swalp_core::kernel::native::pow2;
use swalp_core::tch::{nn::Module, Device, Kind, Tensor};
use swalp_core::{
    FormatFactory, NumberFormat, ParamInfo, Params, QuantPair, QuantRng, Quantizer, RandomStream,
    Result, Rounding, SpecError,
};

/// A minimal test format: multiples of 2^-k. Inputs above 1e29 in magnitude are
/// rejected, to exercise error propagation.
#[derive(Clone, Debug)]
struct Grid {
    k: i32,
}

impl NumberFormat for Grid {
    fn name(&self) -> &str {
        "test_grid"
    }
    fn params(&self) -> toml::Table {
        toml::toml! { k = 0 }
    }
    fn bits_per_value(&self) -> f64 {
        32.0
    }
    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        if x.abs().gt(1e29).any().int64_value(&[]) != 0 {
            return Err(swalp_core::Error::Hook("test_grid refuses 1e30".into()));
        }
        let draws = swalp_core::kernel::tensor::draws(random, x)?;
        let n =
            swalp_core::kernel::tensor::round_to_fixed_grid(x, -self.k, rounding, draws.as_ref())?;
        Ok(n * pow2(-self.k))
    }
}

const K: ParamInfo = ParamInfo::int("k", 0, 20, "fraction bits");
const PARAMS: &[ParamInfo] = &[K];

fn build(p: &mut Params<'_>) -> std::result::Result<Box<dyn NumberFormat>, SpecError> {
    Ok(Box::new(Grid {
        k: p.int(&K)? as i32,
    }))
}

swalp_core::register_format!(FormatFactory {
    name: "test_grid",
    summary: "multiples of 2^-k (test only)",
    params: PARAMS,
    build,
});

fn q(k: i32) -> Quantizer {
    format!("{{ format = \"test_grid\", k = {k} }}")
        .parse()
        .unwrap()
}

fn leaf(values: &[f32]) -> Tensor {
    Tensor::from_slice(values).set_requires_grad(true)
}

fn quantized(quantizer: &Quantizer, x: &Tensor) -> Tensor {
    quantizer.quantize(x, &mut QuantRng::new(0)).unwrap()
}

#[test]
fn forward_is_q_activation_and_backward_is_q_error() {
    let act = QuantAct::from_quantizers(Some(q(2)), Some(q(1)), shared_rng(0));
    let x = leaf(&[0.3, -1.13, 2.6, 0.0]);
    let y = act.forward(&x);
    assert!(y.equal(&Tensor::from_slice(&[0.25f32, -1.25, 2.5, 0.0])));
    let upstream = Tensor::from_slice(&[0.7f32, 0.2, -1.4, 3.3]);
    (&y * &upstream).sum(Kind::Float).backward();
    assert!(x.grad().equal(&quantized(&q(1), &upstream)));
    assert!(x
        .grad()
        .equal(&Tensor::from_slice(&[0.5f32, 0.0, -1.5, 3.5])));
}

#[test]
fn residual_branches_and_shared_modules() {
    let act = QuantAct::from_quantizers(Some(q(3)), Some(q(1)), shared_rng(0));
    let x = leaf(&[0.3, -0.7, 1.9]);
    let c = Tensor::from_slice(&[0.3f32, 1.6, -0.8]);
    // out = act(x) + 2x: the gradient of x sums Q_err(c) and 2c.
    let out = act.forward(&x) + &x * 2.0;
    (&out * &c).sum(Kind::Float).backward();
    let expected = quantized(&q(1), &c) + &c * 2.0;
    assert!(x.grad().allclose(&expected, 0.0, 0.0, false));

    // The same module twice in a chain: Q_err applied at each use.
    let x2 = leaf(&[0.3, -0.7, 1.9]);
    let out = act.forward(&(act.forward(&x2) * 3.0));
    (&out * &c).sum(Kind::Float).backward();
    let expected = quantized(&q(1), &(quantized(&q(1), &c) * 3.0));
    assert!(x2.grad().equal(&expected));
}

#[test]
fn forward_only_and_backward_only_points() {
    let x = leaf(&[0.3, -0.7]);
    let c = Tensor::from_slice(&[0.3f32, 1.6]);
    let act = QuantAct::from_quantizers(None, Some(q(0)), shared_rng(0));
    let y = act.forward(&x);
    assert!(y.equal(&x.detach()));
    (&y * &c).sum(Kind::Float).backward();
    assert!(x.grad().equal(&Tensor::from_slice(&[0.0f32, 2.0])));

    let x = leaf(&[0.3, -0.7]);
    let act = QuantAct::new(QuantPair::new(Some(q(0)), None), shared_rng(0));
    (&act.forward(&x) * &c).sum(Kind::Float).backward();
    assert!(x.grad().equal(&c));
}

#[test]
fn no_grad_inputs_get_no_node() {
    let act = QuantAct::from_quantizers(Some(q(2)), Some(q(1)), shared_rng(0));
    let y = swalp_core::tch::no_grad(|| act.forward(&leaf(&[0.3, 0.6])));
    assert!(!y.requires_grad());
    assert_eq!(act.graph_references(), 0);
    let y = act.forward(&Tensor::from_slice(&[0.3f32]));
    assert!(!y.requires_grad());
}

#[test]
fn graphs_keep_the_quantizers_alive_and_release_them() {
    let act = QuantAct::from_quantizers(Some(q(2)), Some(q(1)), shared_rng(0));
    let x = leaf(&[0.3, -0.7]);
    let y = act.forward(&x);
    assert_eq!(act.graph_references(), 1);
    let probe = act.clone();
    drop(act);
    // The module is gone; the graph still holds the quantizers.
    y.sum(Kind::Float).backward();
    assert!(x.grad().equal(&Tensor::from_slice(&[1.0f32, 1.0])));
    drop(y);
    assert_eq!(probe.graph_references(), 0);
    for _ in 0..1000 {
        let y = probe.forward(&x);
        y.sum(Kind::Float).backward();
    }
    assert_eq!(probe.graph_references(), 0);
}

#[test]
fn errors_surface_as_results_not_crashes() {
    let act = QuantAct::from_quantizers(Some(q(2)), Some(q(1)), shared_rng(0));
    let err = act.f_forward(&leaf(&[1e30])).unwrap_err().to_string();
    assert!(err.contains("test_grid refuses 1e30"), "{err}");
    // An error in the backward quantizer comes back from backward.
    let x = leaf(&[0.5]);
    let y = act.forward(&x);
    let upstream = Tensor::from_slice(&[1e30f32]);
    let err = (&y * &upstream)
        .sum(Kind::Float)
        .f_backward()
        .unwrap_err()
        .to_string();
    assert!(err.contains("test_grid refuses 1e30"), "{err}");
}

#[test]
fn stochastic_points_are_reproducible_per_seed() {
    let stochastic = q(1).with_rounding(Rounding::STOCHASTIC);
    let run = |seed| {
        let act = QuantAct::from_quantizers(
            Some(stochastic.clone()),
            Some(stochastic.clone()),
            shared_rng(seed),
        );
        let x =
            Tensor::linspace(-3.0, 3.0, 256, (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = act.forward(&x);
        (&y * 0.37).sum(Kind::Float).backward();
        (y.detach(), x.grad())
    };
    let (a_y, a_g) = run(1);
    let (b_y, b_g) = run(1);
    let (c_y, _) = run(2);
    assert!(a_y.equal(&b_y) && a_g.equal(&b_g));
    assert!(!a_y.equal(&c_y));
}

#[test]
fn lowered_sequential_quantizes_after_the_chosen_layers() {
    use swalp_core::lower::{LayerKind, QuantSequential};
    use swalp_core::tch::nn::{self, ModuleT};
    let vs = nn::VarStore::new(Device::Cpu);
    let fc1 = nn::linear(vs.root() / "fc1", 3, 5, Default::default());
    let fc2 = nn::linear(vs.root() / "fc2", 5, 2, Default::default());
    let model = QuantSequential::new()
        .add(LayerKind::Linear, fc1)
        .add_fn(LayerKind::Activation, |x| x.relu())
        .add(LayerKind::Linear, fc2);
    let net = model.lower(
        &[LayerKind::Activation],
        QuantPair::new(Some(q(2)), Some(q(1))),
        shared_rng(0),
    );
    let x = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    let vars = vs.variables();
    let manual_hidden = quantized(
        &q(2),
        &x.linear(&vars["fc1.weight"], Some(&vars["fc1.bias"]))
            .relu(),
    );
    let manual = manual_hidden.linear(&vars["fc2.weight"], Some(&vars["fc2.bias"]));
    assert!(net.forward_t(&x, true).allclose(&manual, 1e-6, 1e-6, false));
    // The error quantizer sits on the gradient into the hidden layer: the
    // gradient of fc1's bias is a sum of values on the 2^-1 grid times the
    // ReLU mask.
    net.forward_t(&x, true).sum(Kind::Float).backward();
    let g = vars["fc1.bias"].grad();
    assert!((&g * 2.0).equal(&(&g * 2.0).round()));
}
