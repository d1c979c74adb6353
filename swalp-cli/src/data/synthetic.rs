//! Synthetic problems with known optima, for the SWALP paper's theory
//! results: least squares (a quadratic objective) and L2-regularised
//! logistic regression (strongly convex).

use swalp_core::tch::{Device, Kind, Tensor};

use super::{DataSection, Dataset, Optimum, Task};

fn generator_seed(seed: u64) -> i64 {
    // Data depends on the experiment seed only, not on what ran before.
    (seed as i64).wrapping_mul(0x5DEE_CE66).wrapping_add(11)
}

/// Appends a column of ones, so `[x, 1] · [w, b]` is the affine model.
fn with_ones(x: &Tensor) -> Tensor {
    Tensor::cat(&[x.shallow_clone(), x.ones_like().narrow(1, 0, 1)], 1)
}

/// `y = x·w* + b* + noise`, with `w*` uniform in (-1, 1). The optimum is the
/// least-squares solution on the training set, computed in f64 (with fewer
/// examples than parameters, the minimum-norm one, which gradient descent
/// from zero converges to).
pub fn linear_regression(section: &DataSection, seed: u64) -> Dataset {
    swalp_core::tch::manual_seed(generator_seed(seed));
    let (d, n_train, n_test) = (
        section.dim as i64,
        section.n_train as i64,
        section.n_test as i64,
    );
    let opts = (Kind::Double, Device::Cpu);
    let w_true = Tensor::rand([d, 1], opts) * 2.0 - 1.0;
    let b_true = Tensor::rand([1], opts) - 0.5;
    let make = |n: i64| {
        let x = Tensor::randn([n, d], opts);
        let y = x.matmul(&w_true) + &b_true + Tensor::randn([n, 1], opts) * section.noise;
        (x, y)
    };
    let (train_x, train_y) = make(n_train);
    let (test_x, test_y) = make(n_test);
    let optimum = least_squares(&with_ones(&train_x), &train_y);
    let f32_on = |t: Tensor| t.to_kind(Kind::Float);
    Dataset {
        train_x: f32_on(train_x),
        train_y: f32_on(train_y),
        test_x: f32_on(test_x),
        test_y: f32_on(test_y),
        task: Task::Regression,
        optimum: optimum.map(Optimum::Parameters),
        augment: None,
        prepare: None,
    }
}

/// The least-squares parameters `[w, b]` for design `a` (with its column of
/// ones) and targets `y`: the normal equations when they have a unique
/// solution, else the minimum-norm solution; `None` if libtorch fails.
fn least_squares(a: &Tensor, y: &Tensor) -> Option<Tensor> {
    let (n, p) = (a.size()[0], a.size()[1]);
    let solved = if n >= p {
        Tensor::f_linalg_solve(&a.tr().matmul(a), &a.tr().matmul(y), true)
    } else {
        Tensor::f_linalg_lstsq(a, y, None, "gelsd").map(|(x, _, _, _)| x)
    };
    solved.ok().map(|x| x.squeeze_dim(1))
}

/// Parameters (`(dim + 1) · classes`) up to which the logistic optimum is
/// computed: its Hessian then takes at most 128 MB.
pub const MAX_NEWTON_PARAMETERS: i64 = 4096;

/// Labels drawn from `softmax(noise · x·W*)` with `W*` standard normal. The
/// optimum of cross-entropy plus `weight_decay/2·|θ|²` is found by Newton's
/// method in f64 when it is unique (`weight_decay > 0`: without it softmax
/// regression has a flat direction, and separable data no finite optimum)
/// and the Hessian small ([`MAX_NEWTON_PARAMETERS`]); otherwise the data set
/// has no known optimum and results carry no objective gap.
pub fn logistic_regression(section: &DataSection, seed: u64, weight_decay: f64) -> Dataset {
    swalp_core::tch::manual_seed(generator_seed(seed));
    let (d, k) = (section.dim as i64, section.classes as i64);
    let opts = (Kind::Double, Device::Cpu);
    let w_true = Tensor::randn([d, k], opts);
    let make = |n: i64| {
        let x = Tensor::randn([n, d], opts);
        let p = (x.matmul(&w_true) * section.noise).softmax(1, Kind::Double);
        let y = p.multinomial(1, true).squeeze_dim(1);
        (x, y)
    };
    let (train_x, train_y) = make(section.n_train as i64);
    let (test_x, test_y) = make(section.n_test as i64);
    let newton = weight_decay > 0.0 && (d + 1) * k <= MAX_NEWTON_PARAMETERS;
    let value = newton
        .then(|| logistic_optimum(&train_x, &train_y, k, weight_decay))
        .flatten();
    Dataset {
        train_x: train_x.to_kind(Kind::Float),
        train_y,
        test_x: test_x.to_kind(Kind::Float),
        test_y,
        task: Task::Classification {
            classes: section.classes,
        },
        optimum: value.map(|value| Optimum::Objective {
            value,
            weight_decay,
        }),
        augment: None,
        prepare: None,
    }
}

/// The objective of softmax regression with parameters `theta` (`[d+1, k]`,
/// the last row the biases): mean cross-entropy plus `wd/2·|θ|²`.
pub fn logistic_objective(x: &Tensor, y: &Tensor, theta: &Tensor, weight_decay: f64) -> f64 {
    let logits = with_ones(x).matmul(theta);
    let ce = logits.cross_entropy_for_logits(y);
    (ce + theta.square().sum(Kind::Double) * (weight_decay / 2.0)).double_value(&[])
}

fn logistic_optimum(x: &Tensor, y: &Tensor, k: i64, weight_decay: f64) -> Option<f64> {
    let a = with_ones(x);
    let (n, p) = (a.size()[0], a.size()[1]);
    let onehot = y.one_hot(k).to_kind(Kind::Double);
    let mut theta = Tensor::zeros([p, k], (Kind::Double, Device::Cpu));
    for _ in 0..50 {
        let probs = a.matmul(&theta).softmax(1, Kind::Double);
        let grad = a.tr().matmul(&(&probs - &onehot)) / n as f64 + &theta * weight_decay;
        // Hessian of the mean cross-entropy: E[(diag p − p pᵀ) ⊗ a aᵀ].
        let s = probs.diag_embed(0, -2, -1) - probs.unsqueeze(2) * probs.unsqueeze(1);
        let h = hessian_blocks(&s, &a) / n as f64;
        let h = h.reshape([p * k, p * k])
            + Tensor::eye(p * k, (Kind::Double, Device::Cpu)) * weight_decay;
        let step = Tensor::f_linalg_solve(&h, &grad.reshape([p * k, 1]), true)
            .ok()?
            .reshape([p, k]);
        theta -= step;
        if grad.abs().max().double_value(&[]) < 1e-13 {
            break;
        }
    }
    Some(logistic_objective(x, y, &theta, weight_decay))
}

/// `Σ_n s[n, a, b] · a_n a_nᵀ` as a `[p, k, p, k]` tensor (indices
/// `i, a, j, b`), one `p × p` product per class pair rather than an
/// `n · p² · k²` intermediate.
fn hessian_blocks(s: &Tensor, design: &Tensor) -> Tensor {
    let k = s.size()[1];
    let rows: Vec<Tensor> = (0..k)
        .map(|a| {
            let blocks: Vec<Tensor> = (0..k)
                .map(|b| {
                    let weights = s.select(1, a).select(1, b).unsqueeze(1);
                    design.tr().matmul(&(design * weights))
                })
                .collect();
            Tensor::stack(&blocks, -1)
        })
        .collect();
    Tensor::stack(&rows, 1)
}

/// Images of the given `[c, h, w]` shape with uniform pixels in [0, 1),
/// normalised to zero mean and unit variance, labelled by a fixed random
/// linear teacher so that the task is learnable: the shapes of CIFAR or
/// MNIST, for tests and benchmarks without a download.
pub fn images(section: &DataSection, seed: u64, shape: [i64; 3]) -> Dataset {
    swalp_core::tch::manual_seed(generator_seed(seed));
    let classes = section.classes as i64;
    let features: i64 = shape.iter().product();
    let opts = (Kind::Float, Device::Cpu);
    let teacher = Tensor::randn([features, classes], opts);
    let make = |n: i64| {
        let mut dims = vec![n];
        dims.extend(shape);
        let x = (Tensor::rand(dims.as_slice(), opts) - 0.5) * 12f64.sqrt();
        let y = x.flatten(1, -1).matmul(&teacher).argmax(1, false);
        (x, y)
    };
    let (train_x, train_y) = make(section.n_train as i64);
    let (test_x, test_y) = make(section.n_test as i64);
    Dataset {
        train_x,
        train_y,
        test_x,
        test_y,
        task: Task::Classification {
            classes: section.classes,
        },
        optimum: None,
        augment: None,
        prepare: None,
    }
}
