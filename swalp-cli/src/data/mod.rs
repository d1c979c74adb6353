//! Data sets, held in memory as tensors on the training device.

pub mod augment;
pub mod cifar;
#[cfg(feature = "download")]
pub mod download;
pub mod error;
pub mod idx;
pub mod mnist;
pub mod real;
pub mod synthetic;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use swalp_core::tch::{Kind, Tensor};

use error::DataError;
use real::{DataName, Split};

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// One real target per example, squared loss.
    Regression,
    /// One of `classes` labels, cross-entropy loss.
    Classification {
        /// Number of classes.
        classes: usize,
    },
}

impl Task {
    /// The training loss of a batch: half the mean squared error
    /// (regression) or the mean cross-entropy of the logits
    /// (`F.cross_entropy`).
    pub fn loss(self, output: &Tensor, target: &Tensor) -> Tensor {
        match self {
            Task::Regression => (output - target).square().mean(Kind::Float) * 0.5,
            Task::Classification { .. } => output.cross_entropy_for_logits(target),
        }
    }
}

/// A known optimum of the training objective, for the theory experiments.
#[derive(Debug)]
pub enum Optimum {
    /// Least squares: the parameter vector `[w, b]` minimising the training
    /// loss.
    Parameters(Tensor),
    /// Regularised logistic regression: the minimum value of the training
    /// objective (cross-entropy plus `weight_decay/2 · |θ|²`).
    Objective {
        /// The minimum.
        value: f64,
        /// The L2 coefficient it was computed with.
        weight_decay: f64,
    },
}

/// A training and a test set, on the CPU (batches move to the training
/// device as they are prepared).
pub struct Dataset {
    /// Training inputs, one example per row.
    pub train_x: Tensor,
    /// Training targets (f32 values or i64 labels).
    pub train_y: Tensor,
    /// Test inputs.
    pub test_x: Tensor,
    /// Test targets.
    pub test_y: Tensor,
    /// The task.
    pub task: Task,
    /// The training objective's optimum, when known.
    pub optimum: Option<Optimum>,
    /// Random training-time augmentation of a batch of raw training
    /// inputs, given one uniform 32-bit draw per example (from a
    /// counter-based stream, so batches are reproducible on any thread).
    pub augment: Option<fn(&Tensor, &[u32]) -> Tensor>,
    /// Turns raw training inputs (after augmentation) into model inputs,
    /// e.g. bytes into normalised floats; `None` when they already are.
    /// The test inputs are stored prepared.
    pub prepare: Option<Prepare>,
}

/// A shareable preparation step for raw inputs.
pub type Prepare = std::sync::Arc<dyn Fn(&Tensor) -> Tensor + Send + Sync>;

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("train_x", &self.train_x.size())
            .field("test_x", &self.test_x.size())
            .field("task", &self.task)
            .field("augmented", &self.augment.is_some())
            .finish()
    }
}

impl Dataset {
    /// Raw training inputs made model inputs.
    pub fn prepared(&self, raw: &Tensor) -> Tensor {
        match &self.prepare {
            Some(prepare) => prepare(raw),
            None => raw.shallow_clone(),
        }
    }
}

impl Dataset {
    /// Training examples.
    pub fn train_len(&self) -> i64 {
        self.train_x.size()[0]
    }

    /// The shape of one input.
    pub fn input_shape(&self) -> Vec<i64> {
        self.train_x.size()[1..].to_vec()
    }
}

/// `[data]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `synthetic-linreg` or `synthetic-logreg`.
    pub name: String,
    /// Directory of the data files (real data sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Use only the first N training examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<usize>,
    /// Synthetic data: training examples.
    #[serde(default = "default_n_train")]
    pub n_train: usize,
    /// Synthetic data: test examples.
    #[serde(default = "default_n_test")]
    pub n_test: usize,
    /// Synthetic data: input dimension.
    #[serde(default = "default_dim")]
    pub dim: usize,
    /// Synthetic data: classes (logistic regression).
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Synthetic data: standard deviation of the label noise (linear
    /// regression) or scale of the logits (logistic regression).
    #[serde(default = "default_noise")]
    pub noise: f64,
}

fn default_n_train() -> usize {
    4096
}
fn default_n_test() -> usize {
    1024
}
fn default_dim() -> usize {
    16
}
fn default_classes() -> usize {
    2
}
fn default_noise() -> f64 {
    0.1
}

/// Reads data set `name` from `dir`: `(train, test)`. See
/// [`cifar::read_cifar10`], [`cifar::read_cifar100`] and
/// [`mnist::read_mnist`] for the files and directory layouts
/// accepted.
pub fn read(name: DataName, dir: &std::path::Path) -> Result<(Split, Split), DataError> {
    match name {
        DataName::Cifar10 => cifar::read_cifar10(dir),
        DataName::Cifar100 => cifar::read_cifar100(dir),
        DataName::Mnist => mnist::read_mnist(dir),
        DataName::FashionMnist => mnist::read_fashion_mnist(dir),
    }
}

/// Every `data.name` this build knows.
pub const NAMES: [&str; 8] = [
    "cifar10",
    "cifar100",
    "mnist",
    "fashion-mnist",
    "synthetic-linreg",
    "synthetic-logreg",
    "synthetic-cifar",
    "synthetic-mnist",
];

/// Loads (or generates) the data set a `[data]` section names.
pub fn load(section: &DataSection, seed: u64, weight_decay: f64) -> Result<Dataset, DataError> {
    let mut data = match section.name.as_str() {
        "synthetic-linreg" => synthetic::linear_regression(section, seed),
        "synthetic-logreg" => synthetic::logistic_regression(section, seed, weight_decay),
        "synthetic-cifar" => synthetic::images(section, seed, [3, 32, 32]),
        "synthetic-mnist" => synthetic::images(section, seed, [1, 28, 28]),
        other => match real::DataName::from_name(other) {
            Some(name) => load_real(name, section.path.as_deref())?,
            None => return Err(DataError::UnknownName(other.to_string())),
        },
    };
    if let Some(n) = section.subset {
        let n = (n as i64).min(data.train_len());
        data.train_x = data.train_x.narrow(0, 0, n);
        data.train_y = data.train_y.narrow(0, 0, n);
    }
    Ok(data)
}

/// What a data set looks like, known without loading it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataShape {
    /// The shape of one input, e.g. `[1, 28, 28]`.
    pub input: Vec<i64>,
    /// What is predicted.
    pub task: Task,
    /// Training examples (after `subset`).
    pub train_len: i64,
}

/// The shape of the data set a `[data]` section names, from the section
/// (synthetic data) or the files' headers and lengths (real data), without
/// generating or reading the examples: what [`load`] would give, or the
/// error it would fail with for a missing or malformed file (a damaged
/// pixel or label is only found by reading).
pub fn probe(section: &DataSection) -> Result<DataShape, DataError> {
    let classification = |classes: usize| Task::Classification { classes };
    let n = section.n_train as i64;
    let (input, task, train_len) = match section.name.as_str() {
        "synthetic-linreg" => (vec![section.dim as i64], Task::Regression, n),
        "synthetic-logreg" => (vec![section.dim as i64], classification(section.classes), n),
        "synthetic-cifar" => (vec![3, 32, 32], classification(section.classes), n),
        "synthetic-mnist" => (vec![1, 28, 28], classification(section.classes), n),
        other => {
            let name =
                DataName::from_name(other).ok_or_else(|| DataError::UnknownName(other.into()))?;
            let dir = section.path.clone().unwrap_or_else(|| name.default_dir());
            let task = classification(name.classes() as usize);
            match name {
                DataName::Cifar10 | DataName::Cifar100 => {
                    (vec![3, 32, 32], task, cifar::probe(name, &dir)? as i64)
                }
                DataName::Mnist | DataName::FashionMnist => {
                    let (count, (rows, cols)) = mnist::probe_idx_set(name, &dir)?;
                    (
                        vec![1, i64::from(rows), i64::from(cols)],
                        task,
                        count as i64,
                    )
                }
            }
        }
    };
    let train_len = section
        .subset
        .map_or(train_len, |s| train_len.min(s as i64));
    Ok(DataShape {
        input,
        task,
        train_len,
    })
}

/// A downloadable data set from `dir` (default `data/<name>`): training
/// images kept as bytes (augmented, then normalised per batch), test images
/// normalised once. CIFAR training batches get the seed's random crop with
/// 4-pixel black padding and horizontal flip.
fn load_real(name: real::DataName, dir: Option<&std::path::Path>) -> Result<Dataset, DataError> {
    let dir = dir.map_or_else(|| name.default_dir(), std::path::Path::to_path_buf);
    let (train, test) = read(name, &dir)?;
    let (mean, std) = (name.mean(), name.std());
    let prepare: Prepare =
        std::sync::Arc::new(move |raw: &Tensor| augment::normalize(raw, mean, std));
    let cifar = matches!(name, real::DataName::Cifar10 | real::DataName::Cifar100);
    Ok(Dataset {
        test_x: prepare(&test.images),
        test_y: test.labels,
        train_x: train.images,
        train_y: train.labels,
        task: Task::Classification {
            classes: name.classes() as usize,
        },
        optimum: None,
        augment: cifar.then_some(augment::cifar_train_augment as fn(&Tensor, &[u32]) -> Tensor),
        prepare: Some(prepare),
    })
}
