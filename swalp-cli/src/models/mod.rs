//! Models, built on a `VarStore` with quantization points placed as the
//! SWALP seed places them.

pub mod linear;
pub mod preresnet;
pub mod small;
pub mod vgg;

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
pub const NAMES: [&str; 10] = [
    "linreg",
    "logreg",
    "mlp",
    "cnn",
    "vgg16",
    "vgg16bn",
    "vgg19",
    "vgg19bn",
    "preresnet20",
    "preresnet164",
];

/// Builds the model a `[model]` section names for `data`, with the
/// activation/error quantizers of `points` (none for the averaged model).
pub fn build(
    section: &ModelSection,
    data: &Dataset,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Result<Model, ExperimentError> {
    let shape = data.input_shape();
    let inputs = shape.iter().product::<i64>();
    let classes = match data.task {
        Task::Classification { classes } => Some(classes as i64),
        Task::Regression => None,
    };
    let mismatch = |needs: &str| {
        ExperimentError::Invalid(format!(
            "model.name = {:?} needs {needs}; choose a matching data.name",
            section.name
        ))
    };
    let images = || -> Result<(i64, i64), ExperimentError> {
        let classes = classes.ok_or_else(|| mismatch("a classification data set"))?;
        match shape.as_slice() {
            [c, 32, 32] => Ok((*c, classes)),
            _ => Err(ExperimentError::Invalid(format!(
                "model.name = {:?} needs 32×32 images (CIFAR), the data has inputs of shape {shape:?}",
                section.name
            ))),
        }
    };
    let vgg = |depth, batchnorm| -> Result<Model, ExperimentError> {
        let (c, k) = images()?;
        Ok(vgg::build(
            vgg::Variant { depth, batchnorm },
            c,
            k,
            points,
            rng.clone(),
            device,
        ))
    };
    let resnet = |depth| -> Result<Model, ExperimentError> {
        let (c, k) = images()?;
        Ok(preresnet::build(depth, c, k, points, rng.clone(), device))
    };
    match section.name.as_str() {
        "linreg" if classes.is_none() => Ok(linear::build(inputs, 1, points, rng, device)),
        "linreg" => Err(mismatch("a regression data set")),
        "logreg" => Ok(linear::build(
            inputs,
            classes.ok_or_else(|| mismatch("a classification data set"))?,
            points,
            rng,
            device,
        )),
        "mlp" => Ok(small::mlp(
            inputs,
            classes.ok_or_else(|| mismatch("a classification data set"))?,
            points,
            rng,
            device,
        )),
        "cnn" => match (shape.as_slice(), classes) {
            ([_, h, w], Some(k)) if h % 4 == 0 && w % 4 == 0 => {
                Ok(small::cnn(&shape, k, points, rng, device))
            }
            _ => Err(mismatch(
                "images with sides divisible by 4 and class labels",
            )),
        },
        "vgg16" => vgg(16, false),
        "vgg16bn" => vgg(16, true),
        "vgg19" => vgg(19, false),
        "vgg19bn" => vgg(19, true),
        "preresnet20" => resnet(20),
        "preresnet164" => resnet(164),
        other => Err(ExperimentError::Invalid(format!(
            "invalid value {other:?} for `model.name`: expected one of {}",
            NAMES.join(", ")
        ))),
    }
}
