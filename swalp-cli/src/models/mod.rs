//! Models, built on a `VarStore` with quantization points placed as the
//! SWALP seed places them.

pub mod linear;

use swalp_core::hook::SharedRng;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use crate::data::{Dataset, Task};
use crate::experiment::{config::ModelSection, ExperimentError};

/// A model and its variables.
#[derive(Debug)]
pub struct Model {
    /// The variables.
    pub vs: nn::VarStore,
    /// The network.
    pub net: nn::SequentialT,
    /// Whether it has BatchNorm layers (whose statistics SWA recomputes).
    pub has_batchnorm: bool,
}

/// The momentum every BatchNorm layer is built with (PyTorch's default);
/// SWA's statistics recomputation needs it.
pub const BATCHNORM_MOMENTUM: f64 = 0.1;

/// Every `model.name` this build knows.
pub const NAMES: [&str; 2] = ["linreg", "logreg"];

/// Builds the model a `[model]` section names for `data`, with the
/// activation/error quantizers of `points` (none for the averaged model).
pub fn build(
    section: &ModelSection,
    data: &Dataset,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Result<Model, ExperimentError> {
    let inputs = data.input_shape().iter().product::<i64>();
    match (section.name.as_str(), data.task) {
        ("linreg", Task::Regression) => Ok(linear::build(inputs, 1, points, rng, device)),
        ("logreg", Task::Classification { classes }) => {
            Ok(linear::build(inputs, classes as i64, points, rng, device))
        }
        ("linreg" | "logreg", task) => Err(ExperimentError::Invalid(format!(
            "model {:?} does not fit data.name's task ({task:?}): use linreg for regression, logreg for classification",
            section.name
        ))),
        (other, _) => Err(ExperimentError::Invalid(format!(
            "invalid value {other:?} for `model.name`: expected \"linreg\" or \"logreg\""
        ))),
    }
}
