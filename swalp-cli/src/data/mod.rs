//! Data sets, held in memory as tensors on the training device.

pub mod synthetic;

use swalp_core::tch::Tensor;

use crate::experiment::{config::DataSection, ExperimentError};

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
#[derive(Debug)]
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
    /// Random training-time augmentation of a batch, given one uniform
    /// 32-bit draw per example (from a counter-based stream, so batches are
    /// reproducible on any thread).
    pub augment: Option<fn(&Tensor, &[u32]) -> Tensor>,
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

/// Every `data.name` this build knows.
pub const NAMES: [&str; 2] = ["synthetic-linreg", "synthetic-logreg"];

/// Loads (or generates) the data set a `[data]` section names.
pub fn load(
    section: &DataSection,
    seed: u64,
    weight_decay: f64,
) -> Result<Dataset, ExperimentError> {
    let mut data = match section.name.as_str() {
        "synthetic-linreg" => synthetic::linear_regression(section, seed),
        "synthetic-logreg" => synthetic::logistic_regression(section, seed, weight_decay),
        other => {
            return Err(ExperimentError::Invalid(format!(
                "invalid value {other:?} for `data.name`: expected \"synthetic-linreg\" or \"synthetic-logreg\""
            )))
        }
    };
    if let Some(n) = section.subset {
        let n = (n as i64).min(data.train_len());
        data.train_x = data.train_x.narrow(0, 0, n);
        data.train_y = data.train_y.narrow(0, 0, n);
    }
    Ok(data)
}
