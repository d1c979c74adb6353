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

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use swalp_core::batchnorm::BatchNormMomentum;
use swalp_core::hook::SharedRng;
use swalp_core::points::PointConfig;
use swalp_core::tch::{nn, Device};

use crate::data::Task;

/// `[model]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// One of [`crate::models::NAMES`].
    pub name: String,
    /// Start from the weights in this `.safetensors` file, named as the
    /// PyTorch twin's `state_dict()`, instead of a fresh initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Dropout probability of the VGG models (the seed's 0.5 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// In a data-parallel run, normalise with the statistics of the whole
    /// batch across the ranks (PyTorch's SyncBatchNorm) rather than each
    /// rank's share; models with BatchNorm only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_batchnorm: bool,
}

/// A model that cannot be built as asked.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// No model has this `model.name`.
    UnknownName(String),
    /// The model needs other data (a task, an input shape).
    Mismatch {
        /// `model.name`.
        model: String,
        /// What it needs, e.g. "a classification data set".
        needs: String,
    },
    /// `model.dropout` for a model without dropout layers.
    NoDropout {
        /// `model.name`.
        model: String,
    },
    /// `model.sync_batchnorm` for a model without BatchNorm layers.
    NoBatchNorm {
        /// `model.name`.
        model: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::UnknownName(name) => write!(
                f,
                "invalid value {name:?} for `model.name`: expected one of {}",
                NAMES.join(", ")
            ),
            ModelError::Mismatch { model, needs } => write!(
                f,
                "model.name = {model:?} needs {needs}; choose a matching data.name"
            ),
            ModelError::NoDropout { model } => write!(
                f,
                "model.dropout applies to the VGG models, the ones with dropout layers; \
                 model.name = {model:?} has none"
            ),
            ModelError::NoBatchNorm { model } => write!(
                f,
                "model.sync_batchnorm applies to models with BatchNorm (vgg16bn, vgg19bn, \
                 preresnet20, preresnet164); model.name = {model:?} has none"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

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
) -> Result<Model, ModelError> {
    let shape = &inputs.shape;
    let flat = shape.iter().product::<i64>();
    let classes = match inputs.task {
        Task::Classification { classes } => Some(classes as i64),
        Task::Regression => None,
    };
    let name = section.name.as_str();
    let mismatch = |needs: &str| ModelError::Mismatch {
        model: name.to_string(),
        needs: needs.to_string(),
    };
    let classes_or = || classes.ok_or_else(|| mismatch("a classification data set"));
    if section.dropout.is_some() && !name.starts_with("vgg") {
        return Err(ModelError::NoDropout {
            model: name.to_string(),
        });
    }
    let images = || -> Result<(i64, i64), ModelError> {
        let classes = classes_or()?;
        match shape.as_slice() {
            [c, 32, 32] => Ok((*c, classes)),
            _ => Err(mismatch(&format!(
                "32×32 images (CIFAR), the data has inputs of shape {shape:?}"
            ))),
        }
    };
    let vgg = |depth, batchnorm| -> Result<Model, ModelError> {
        let (c, k) = images()?;
        let dropout = section.dropout.unwrap_or(vgg::DROPOUT);
        let variant = vgg::Variant {
            depth,
            batchnorm,
            dropout,
        };
        Ok(vgg::build(variant, c, k, points, rng.clone(), device))
    };
    let resnet = |depth| -> Result<Model, ModelError> {
        let (c, k) = images()?;
        Ok(preresnet::build(depth, c, k, points, rng.clone(), device))
    };
    let model = match name {
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
        other => Err(ModelError::UnknownName(other.to_string())),
    }?;
    if section.sync_batchnorm && model.batchnorm.is_none() {
        return Err(ModelError::NoBatchNorm {
            model: name.to_string(),
        });
    }
    Ok(model)
}
