//! The real image data sets (CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST):
//! their names, their statistics, and [`Split`], the `Uint8` images and
//! `Int64` labels [`super::read`] loads from a data set's directory.
//!
//! Files are read in the formats the data sets are distributed in
//! ([`super::cifar`], [`super::mnist`]) and fetched by
//! `swalp-cli data download` ([`super::download`]).

use std::fmt;
use std::path::{Path, PathBuf};

use swalp_core::tch::Tensor;

use super::augment;

/// The environment variable naming a mirror for `swalp-cli data download`
/// (`URL/<name>/<file>`), mentioned in the errors that tell how to fetch a
/// data set.
pub const MIRROR_ENV: &str = "SWALP_DATA_MIRROR";

/// A real data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataName {
    /// CIFAR-10: 32x32 RGB images, 10 classes, 50000 + 10000.
    Cifar10,
    /// CIFAR-100: 32x32 RGB images, 100 (fine) classes, 50000 + 10000.
    Cifar100,
    /// MNIST: 28x28 grey handwritten digits, 10 classes, 60000 + 10000.
    Mnist,
    /// Fashion-MNIST: 28x28 grey clothing images, 10 classes, 60000 + 10000.
    FashionMnist,
}

impl DataName {
    /// Every real data set.
    pub const ALL: [DataName; 4] = [
        DataName::Cifar10,
        DataName::Cifar100,
        DataName::Mnist,
        DataName::FashionMnist,
    ];

    /// The name on the command line and in experiment files: `cifar10`,
    /// `cifar100`, `mnist`, `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            DataName::Cifar10 => "cifar10",
            DataName::Cifar100 => "cifar100",
            DataName::Mnist => "mnist",
            DataName::FashionMnist => "fashion-mnist",
        }
    }

    /// The data set called [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The usual spelling, for messages: `CIFAR-10`, `Fashion-MNIST`.
    pub fn title(self) -> &'static str {
        match self {
            DataName::Cifar10 => "CIFAR-10",
            DataName::Cifar100 => "CIFAR-100",
            DataName::Mnist => "MNIST",
            DataName::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Number of classes (labels are `0..classes`).
    pub fn classes(self) -> u32 {
        match self {
            DataName::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Colour channels per image: 3 (CIFAR) or 1 (MNIST, Fashion-MNIST).
    pub fn channels(self) -> i64 {
        match self {
            DataName::Cifar10 | DataName::Cifar100 => 3,
            DataName::Mnist | DataName::FashionMnist => 1,
        }
    }

    /// Per-channel mean of the pixels scaled to [0, 1], for
    /// [`augment::normalize`]. CIFAR-10 and CIFAR-100 share the SWALP seed's
    /// CIFAR-10 values; Fashion-MNIST has its own.
    pub fn mean(self) -> &'static [f64] {
        match self {
            DataName::Cifar10 | DataName::Cifar100 => &augment::CIFAR_MEAN,
            DataName::Mnist => &augment::MNIST_MEAN,
            DataName::FashionMnist => &augment::FASHION_MNIST_MEAN,
        }
    }

    /// Per-channel standard deviation matching [`mean`](Self::mean).
    pub fn std(self) -> &'static [f64] {
        match self {
            DataName::Cifar10 | DataName::Cifar100 => &augment::CIFAR_STD,
            DataName::Mnist => &augment::MNIST_STD,
            DataName::FashionMnist => &augment::FASHION_MNIST_STD,
        }
    }

    /// Where `swalp-cli data download` puts the data set by default:
    /// `data/<name>`.
    pub fn default_dir(self) -> PathBuf {
        Path::new("data").join(self.name())
    }

    /// The command that downloads the data set into `dir`.
    pub fn download_command(self, dir: &Path) -> String {
        format!(
            "swalp-cli data download {} --dir {}",
            self.name(),
            dir.display()
        )
    }
}

impl fmt::Display for DataName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One split (training or test) of an image data set, on the CPU.
#[derive(Debug)]
pub struct Split {
    /// `Uint8 [N, C, H, W]`, pixel values as stored (0..=255).
    pub images: Tensor,
    /// `Int64 [N]`, each in `0..classes`.
    pub labels: Tensor,
}

impl Split {
    /// Builds a split from `n` images of `shape` stored back to back in
    /// `pixels` (`[C, H, W]` row-major each) and their labels.
    pub(crate) fn from_raw(pixels: &[u8], labels: &[u8], shape: [i64; 3]) -> Split {
        let n = labels.len() as i64;
        let labels: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        Split {
            images: Tensor::from_slice(pixels).view([n, shape[0], shape[1], shape[2]]),
            labels: Tensor::from_slice(&labels),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
