//! The low-precision optimizer: equal to tch's own optimizers when nothing is
//! quantized, the seed's step order when everything is, and a restorable
//! state. Also SWA and BatchNorm recomputation.

use swalp_core::batchnorm::{recompute_batchnorm, BatchNorm, BatchNormMomentum};
use swalp_core::hook::shared_rng;
use swalp_core::optim::{Adam, AdamConfig, LowPrecision, OptimQuantizers, Sgd, SgdConfig};
use swalp_core::swa::Swa;
use swalp_core::tch::{nn, nn::Module, nn::ModuleT, nn::OptimizerConfig, Device, Kind, Tensor};
use swalp_core::{QuantRng, Quantizer, Rounding};
use swalp_formats as _;

/// libtorch's generator is global and tests run in parallel: seeding and the
/// draws that follow must not interleave with another test's.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    let _guard = SEEDED.lock().unwrap_or_else(|p| p.into_inner());
    swalp_core::tch::manual_seed(seed);
    draw()
}

fn model(seed: i64) -> (nn::VarStore, nn::Sequential) {
    seeded(seed, model_unseeded)
}

fn model_unseeded() -> (nn::VarStore, nn::Sequential) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "l1", 6, 8, Default::default()))
        .add_fn(|x| x.tanh())
        .add(nn::linear(vs.root() / "l2", 8, 3, Default::default()));
    (vs, net)
}

fn data() -> (Tensor, Tensor) {
    seeded(99, || {
        let x = Tensor::randn([32, 6], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([32, 3], (Kind::Float, Device::Cpu));
        (x, y)
    })
}

fn loss(net: &nn::Sequential, x: &Tensor, y: &Tensor) -> Tensor {
    (net.forward(x) - y).square().mean(Kind::Float)
}

fn assert_same_weights(a: &nn::VarStore, b: &nn::VarStore, what: &str) {
    let (va, vb) = (a.variables(), b.variables());
    for (name, t) in &va {
        let u = &vb[name];
        let diff = (t - u).abs().max().double_value(&[]);
        let scale = t.abs().max().double_value(&[]).max(1.0);
        assert!(diff <= 2e-6 * scale, "{what}: {name} differs by {diff}");
    }
}

fn train_ours<R: swalp_core::optim::UpdateRule>(
    opt: &mut LowPrecision<R>,
    net: &nn::Sequential,
    steps: usize,
) {
    let (x, y) = data();
    for _ in 0..steps {
        opt.zero_grad();
        loss(net, &x, &y).backward();
        opt.step().unwrap();
    }
}

fn train_tch(opt: &mut nn::Optimizer, net: &nn::Sequential, steps: usize) {
    let (x, y) = data();
    for _ in 0..steps {
        opt.zero_grad();
        loss(net, &x, &y).backward();
        opt.step();
    }
}

#[test]
fn full_precision_sgd_equals_tch_sgd() {
    let configs = [
        (0.0, 0.0, 0.0, false),
        (0.9, 0.0, 5e-4, false),
        (0.9, 0.3, 1e-3, false),
        (0.9, 0.0, 1e-3, true),
    ];
    for (momentum, dampening, wd, nesterov) in configs {
        let (vs_a, net_a) = model(1);
        let (vs_b, net_b) = model(1);
        let config = SgdConfig {
            momentum,
            dampening,
            weight_decay: wd,
            nesterov,
            ..SgdConfig::new(0.05)
        };
        let mut ours = Sgd::from_var_store(
            &vs_a,
            config,
            OptimQuantizers::full_precision(),
            shared_rng(0),
        )
        .unwrap();
        let mut theirs = nn::Sgd {
            momentum,
            dampening,
            wd,
            nesterov,
        }
        .build(&vs_b, 0.05)
        .unwrap();
        train_ours(&mut ours, &net_a, 200);
        train_tch(&mut theirs, &net_b, 200);
        assert_same_weights(&vs_a, &vs_b, &format!("sgd {config:?}"));
    }
}

#[test]
fn full_precision_adam_and_adamw_equal_tch() {
    let (vs_a, net_a) = model(2);
    let (vs_b, net_b) = model(2);
    let config = AdamConfig {
        weight_decay: 1e-3,
        ..AdamConfig::adam(1e-2)
    };
    let mut ours = Adam::from_var_store(
        &vs_a,
        config,
        OptimQuantizers::full_precision(),
        shared_rng(0),
    )
    .unwrap();
    let mut theirs = nn::Adam {
        wd: 1e-3,
        ..Default::default()
    }
    .build(&vs_b, 1e-2)
    .unwrap();
    train_ours(&mut ours, &net_a, 200);
    train_tch(&mut theirs, &net_b, 200);
    assert_same_weights(&vs_a, &vs_b, "adam");

    let (vs_a, net_a) = model(3);
    let (vs_b, net_b) = model(3);
    let mut ours = Adam::from_var_store(
        &vs_a,
        AdamConfig::adamw(1e-2),
        OptimQuantizers::full_precision(),
        shared_rng(0),
    )
    .unwrap();
    let mut theirs = nn::AdamW::default().build(&vs_b, 1e-2).unwrap();
    train_ours(&mut ours, &net_a, 200);
    train_tch(&mut theirs, &net_b, 200);
    assert_same_weights(&vs_a, &vs_b, "adamw");
}

fn fixed(wl: u32, fl: u32, rounding: &str) -> Quantizer {
    format!("{{ format = \"fixed\", wl = {wl}, fl = {fl}, rounding = \"{rounding}\" }}")
        .parse()
        .unwrap()
}

#[test]
fn step_order_matches_the_seed_on_a_hand_computed_example() {
    // Two parameters, loss = c · w so the gradient is c at every step.
    let w = Tensor::from_slice(&[0.3f32, -0.7]).set_requires_grad(true);
    let c = Tensor::from_slice(&[0.37f32, -1.21]);
    let quant = OptimQuantizers {
        gradient: Some(fixed(8, 4, "nearest-even")),
        momentum: Some(fixed(8, 4, "nearest-even")),
        accumulator: Some(fixed(12, 8, "nearest-even")),
        weight: Some(fixed(8, 4, "nearest-even")),
        grad_scale: 1.0,
    };
    let config = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.5)
    };
    let mut opt = Sgd::new(
        vec![("w".into(), w.shallow_clone())],
        config,
        0.5,
        quant,
        shared_rng(0),
    );
    let values = |t: &Tensor| Vec::<f32>::try_from(t.detach()).unwrap();
    let step = |opt: &mut Sgd| {
        opt.zero_grad();
        (&w * &c).sum(Kind::Float).backward();
        opt.step().unwrap();
    };
    // Step 1: g = Q(c) = [6/16, -19/16]; buf = g; acc = w - 0.5 g
    // = [0.1125, -0.10625] → Q_acc (1/256) = [29, -27]/256 → Q_w (1/16) = [2, -2]/16.
    step(&mut opt);
    assert_eq!(
        values(opt.accumulators()[0].as_ref().unwrap()),
        vec![29.0 / 256.0, -27.0 / 256.0]
    );
    assert_eq!(values(&w), vec![0.125, -0.125]);
    assert_eq!(
        values(opt.buffers(0)[0].as_ref().unwrap()),
        vec![0.375, -1.1875]
    );
    // Step 2: buf = 0.9 buf + g = [0.7125, -2.25625]; acc = [29/256 - 0.35625,
    // -27/256 + 1.128125] = [-0.24297, 1.02266] → [-62, 262]/256 → w = [-4, 16]/16;
    // buf → Q(buf) = [11, -36]/16.
    step(&mut opt);
    assert_eq!(
        values(opt.accumulators()[0].as_ref().unwrap()),
        vec![-62.0 / 256.0, 262.0 / 256.0]
    );
    assert_eq!(values(&w), vec![-0.25, 1.0]);
    assert_eq!(
        values(opt.buffers(0)[0].as_ref().unwrap()),
        vec![11.0 / 16.0, -36.0 / 16.0]
    );
}

#[test]
fn every_number_is_representable_after_every_step() {
    let (vs, net) = model(4);
    let weight = fixed(8, 6, "stochastic");
    let acc = fixed(16, 12, "stochastic");
    let mom = fixed(8, 5, "stochastic");
    let quant = OptimQuantizers {
        gradient: Some(fixed(8, 6, "stochastic")),
        momentum: Some(mom.clone()),
        accumulator: Some(acc.clone()),
        weight: Some(weight.clone()),
        grad_scale: 1.0,
    };
    let config = SgdConfig {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..SgdConfig::new(0.1)
    };
    let mut opt = Sgd::from_var_store(&vs, config, quant, shared_rng(7)).unwrap();
    let (x, y) = data();
    let on_grid = |q: &Quantizer, t: &Tensor| {
        let again = q
            .clone()
            .with_rounding(Rounding::NearestEven)
            .quantize(t, &mut QuantRng::new(0))
            .unwrap();
        again.equal(&t.detach())
    };
    for _ in 0..20 {
        opt.zero_grad();
        loss(&net, &x, &y).backward();
        opt.step().unwrap();
        for (i, p) in opt.params().iter().enumerate() {
            assert!(on_grid(&weight, p), "weights off the weight grid");
            assert!(
                on_grid(&acc, opt.accumulators()[i].as_ref().unwrap()),
                "accumulator off its grid"
            );
            assert!(
                on_grid(&mom, opt.buffers(i)[0].as_ref().unwrap()),
                "momentum off its grid"
            );
        }
    }
}

#[test]
fn saved_state_resumes_exactly() {
    let quant = || OptimQuantizers {
        gradient: Some(fixed(8, 6, "stochastic")),
        accumulator: Some(fixed(16, 12, "stochastic")),
        weight: Some(fixed(8, 6, "stochastic")),
        momentum: Some(fixed(8, 5, "stochastic")),
        grad_scale: 1.0,
    };
    let config = SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    };
    let (vs_a, net_a) = model(5);
    let rng_a = shared_rng(3);
    let mut a = Sgd::from_var_store(&vs_a, config, quant(), rng_a.clone()).unwrap();
    train_ours(&mut a, &net_a, 5);

    // Copy the model, the optimizer state and the generator; continue both.
    let (mut vs_b, net_b) = model(6);
    vs_b.copy(&vs_a).unwrap();
    let rng_b = shared_rng(0);
    *rng_b.lock().unwrap() = rng_a.lock().unwrap().clone();
    let mut b = Sgd::from_var_store(&vs_b, config, quant(), rng_b).unwrap();
    let state: Vec<(String, Tensor)> = a
        .state_tensors()
        .into_iter()
        .map(|(k, t)| (k, t.copy()))
        .collect();
    b.load_state_tensors(&state).unwrap();
    assert_eq!(b.steps(), 5);
    train_ours(&mut a, &net_a, 5);
    train_ours(&mut b, &net_b, 5);
    for (name, t) in vs_a.variables() {
        assert!(
            t.equal(&vs_b.variables()[&name]),
            "{name} differs after resuming"
        );
    }
}

#[test]
fn swa_average_is_the_mean_of_the_sampled_iterates() {
    let (vs, net) = model(8);
    let mut opt = Sgd::from_var_store(
        &vs,
        SgdConfig::new(0.05),
        OptimQuantizers::full_precision(),
        shared_rng(0),
    )
    .unwrap();
    let params = || -> Vec<(String, Tensor)> {
        vs.variables()
            .into_iter()
            .map(|(k, t)| (k, t.detach().copy()))
            .collect()
    };
    let mut swa = Swa::new(&params());
    let rng = shared_rng(0);
    let mut samples = Vec::new();
    for _ in 0..7 {
        train_ours(&mut opt, &net, 3);
        let p = params();
        swa.update(&p, &rng).unwrap();
        samples.push(p);
    }
    assert_eq!(swa.count(), 7);
    for (name, avg) in swa.average() {
        let stacked: Vec<Tensor> = samples
            .iter()
            .map(|s| s.iter().find(|(k, _)| k == name).unwrap().1.shallow_clone())
            .collect();
        let mean = Tensor::stack(&stacked, 0).mean_dim(0, false, Kind::Float);
        assert!(avg.allclose(&mean, 1e-6, 1e-7, false), "{name}");
    }
}

#[test]
fn batchnorm_recomputation_equals_the_training_set_statistics() {
    let vs = nn::VarStore::new(Device::Cpu);
    let momentum = BatchNormMomentum::default();
    let bn = BatchNorm::new(vs.root() / "bn", 4, &momentum);
    let data = seeded(11, || {
        Tensor::randn([40, 4], (Kind::Float, Device::Cpu)) * 3.0 + 1.5
    });
    let batches: Vec<Tensor> = data.split(10, 0);
    // Stale statistics from elsewhere must not leak into the result.
    let _ = bn.forward_t(
        &(Tensor::randn([10, 4], (Kind::Float, Device::Cpu)) * 50.0),
        true,
    );
    recompute_batchnorm(
        &vs,
        &momentum,
        batches.iter().map(|b| b.shallow_clone()),
        |b| bn.f_forward_t(b, true).map(|_| ()),
    )
    .unwrap();
    assert_eq!(momentum.get(), 0.1, "the default momentum is restored");
    // Equal batches: the cumulative mean is the data mean; the variance is the
    // mean of the batches' unbiased variances (what BatchNorm tracks).
    let mean = data.mean_dim(0, false, Kind::Float);
    let var = Tensor::stack(
        &batches
            .iter()
            .map(|b| b.var_dim(0, true, false))
            .collect::<Vec<_>>(),
        0,
    )
    .mean_dim(0, false, Kind::Float);
    assert!(
        bn.running_mean.allclose(&mean, 1e-5, 1e-6, false),
        "{:?} vs {:?}",
        bn.running_mean,
        mean
    );
    assert!(bn.running_var.allclose(&var, 1e-5, 1e-6, false));
}
