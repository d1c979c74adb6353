//! Models, built on a `VarStore` with quantization points placed, weights
//! initialised and variables named as the SWALP seed's PyTorch models (and,
//! for the small models, as their PyTorch twins in
//! `swalp-cli/tests/twins/twins.py`).

pub mod init;
pub mod linear;
pub mod preresnet;
pub mod small;
pub mod vgg;
pub mod weights;

use swalp_core::batchnorm::BatchNormMomentum;
use swalp_core::hook::SharedRng;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use crate::data::Task;
use crate::experiment::{config::ModelSection, ExperimentError};

/// A model and its variables.
#[derive(Debug)]
pub struct Model {
    /// The variables, named as the PyTorch twin's `state_dict()`.
    pub vs: nn::VarStore,
    /// The network.
    pub net: nn::SequentialT,
    /// The momentum of its BatchNorm layers, when it has any (SWA and the
    /// seed's evaluation recompute their statistics through it).
    pub batchnorm: Option<BatchNormMomentum>,
}

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

/// What a model is built for: the shape of one input and the task.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// The shape of one example, e.g. `[3, 32, 32]`.
    pub shape: Vec<i64>,
    /// What is predicted.
    pub task: Task,
}

/// Builds the model a `[model]` section names for `inputs`, with the
/// activation/error quantizers of `points` (none for the averaged model).
/// Initial weights are drawn from libtorch's generator: seed it first.
pub fn build(
    section: &ModelSection,
    inputs: &Inputs,
    points: &PointConfig,
    rng: SharedRng,
    device: Device,
) -> Result<Model, ExperimentError> {
    let shape = &inputs.shape;
    let flat = shape.iter().product::<i64>();
    let classes = match inputs.task {
        Task::Classification { classes } => Some(classes as i64),
        Task::Regression => None,
    };
    let name = section.name.as_str();
    let mismatch = |needs: &str| {
        ExperimentError::Invalid(format!(
            "model.name = {name:?} needs {needs}; choose a matching data.name"
        ))
    };
    let classes_or = || classes.ok_or_else(|| mismatch("a classification data set"));
    if section.dropout.is_some() && !name.starts_with("vgg") {
        return Err(ExperimentError::Invalid(format!(
            "model.dropout applies to the VGG models, the ones with dropout layers; \
             model.name = {name:?} has none"
        )));
    }
    let images = || -> Result<(i64, i64), ExperimentError> {
        let classes = classes_or()?;
        match shape.as_slice() {
            [c, 32, 32] => Ok((*c, classes)),
            _ => Err(ExperimentError::Invalid(format!(
                "model.name = {name:?} needs 32×32 images (CIFAR), the data has inputs of shape {shape:?}"
            ))),
        }
    };
    let vgg = |depth, batchnorm| -> Result<Model, ExperimentError> {
        let (c, k) = images()?;
        let dropout = section.dropout.unwrap_or(vgg::DROPOUT);
        let variant = vgg::Variant {
            depth,
            batchnorm,
            dropout,
        };
        Ok(vgg::build(variant, c, k, points, rng.clone(), device))
    };
    let resnet = |depth| -> Result<Model, ExperimentError> {
        let (c, k) = images()?;
        Ok(preresnet::build(depth, c, k, points, rng.clone(), device))
    };
    match name {
        "linreg" if classes.is_none() => Ok(linear::build(flat, 1, points, rng, device)),
        "linreg" => Err(mismatch("a regression data set")),
        "logreg" => Ok(linear::build(flat, classes_or()?, points, rng, device)),
        "mlp" => Ok(small::mlp(flat, classes_or()?, points, rng, device)),
        "cnn" => match (shape.as_slice(), classes) {
            ([_, h, w], Some(k)) if h % 4 == 0 && w % 4 == 0 => {
                Ok(small::cnn(shape, k, points, rng, device))
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
