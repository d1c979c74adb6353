//! MNIST and Fashion-MNIST in their IDX distribution: four files,
//! `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or
//! gzip-compressed with a `.gz` suffix (as downloaded).
//!
//! An images file is the big-endian `u32`s magic `0x00000803`, count, rows,
//! columns (28 and 28 for MNIST, but any size is read, e.g. scikit-learn's
//! 8×8 digits written as IDX), then count·rows·columns pixel bytes,
//! row-major; a labels file is the magic `0x00000801`, count, then count
//! label bytes. Every field is checked, the length must be exactly what the
//! header says, and both splits must have images of one size.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::error::{DataError, FileProblem};
use super::real::{DataName, Split};

pub use super::idx::{IMAGES_MAGIC, LABELS_MAGIC};

/// The four files, without `.gz`: training images and labels, test images
/// and labels.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Reads MNIST: `(train, test)`, 60000 and 10000 examples for the real
/// files (any count and image size are accepted). Images are
/// `Uint8 [N, 1, rows, cols]` (`[N, 1, 28, 28]` for MNIST), labels
/// `Int64 [N]` in `0..10`, on the CPU.
///
/// `dir` holds the four IDX files (see [`FILES`]), each raw or as `.gz`
/// (raw preferred when both exist). torchvision's layout, `dir/raw/` or
/// `dir/MNIST/raw/`, is accepted too.
pub fn read_mnist(dir: &Path) -> Result<(Split, Split), DataError> {
    read_idx_set(DataName::Mnist, dir)
}

/// Reads Fashion-MNIST; the same files and layout as [`read_mnist`]
/// (torchvision's folder is `FashionMNIST/raw/`).
pub fn read_fashion_mnist(dir: &Path) -> Result<(Split, Split), DataError> {
    read_idx_set(DataName::FashionMnist, dir)
}

/// Reads the four IDX files of `name` (MNIST or Fashion-MNIST) from `dir`.
pub(crate) fn read_idx_set(name: DataName, dir: &Path) -> Result<(Split, Split), DataError> {
    let files_dir = resolve(name, dir);
    let reader = Reader { name, dir };
    let split =
        |images: &str, labels: &str, train_size: Option<(u32, u32)>| -> Result<_, DataError> {
            let images_path = reader.locate(&files_dir, images);
            let labels_path = reader.locate(&files_dir, labels);
            let Images {
                pixels,
                count: n_images,
                size: (rows, cols),
            } = reader.images(&images_path)?;
            if let Some(train) = train_size.filter(|&t| t != (rows, cols)) {
                let size = (rows, cols);
                return Err(reader.error(&images_path, FileProblem::SizeMismatch { size, train }));
            }
            let labels = reader.labels(&labels_path)?;
            if labels.len() as u64 != n_images {
                return Err(reader.error(
                    &labels_path,
                    FileProblem::CountMismatch {
                        images: images_path,
                        n_images,
                        n_labels: labels.len() as u64,
                    },
                ));
            }
            let shape = [1, i64::from(rows), i64::from(cols)];
            Ok((Split::from_raw(&pixels, &labels, shape), (rows, cols)))
        };
    let (train, size) = split(FILES[0], FILES[1], None)?;
    let (test, _) = split(FILES[2], FILES[3], Some(size))?;
    Ok((train, test))
}

/// Checks the four IDX files of `name` in `dir` from their headers (and, for
/// raw files, their lengths) without reading the pixels: returns the number
/// of training images and their size (rows, columns).
pub(crate) fn probe_idx_set(name: DataName, dir: &Path) -> Result<(u64, (u32, u32)), DataError> {
    let files_dir = resolve(name, dir);
    let reader = Reader { name, dir };
    let split = |images: &str, labels: &str| -> Result<(u64, (u32, u32)), DataError> {
        let images_path = reader.locate(&files_dir, images);
        let labels_path = reader.locate(&files_dir, labels);
        let head = reader.prefix(&images_path, 16)?;
        let dims = reader.header(&images_path, &head, IMAGES_MAGIC, 3)?;
        let (count, rows, cols) = (u64::from(dims[0]), dims[1], dims[2]);
        if rows == 0 || cols == 0 {
            return Err(reader.error(&images_path, FileProblem::BadDims { rows, cols }));
        }
        reader.check_raw_length(&images_path, 16 + count * u64::from(rows) * u64::from(cols))?;
        let head = reader.prefix(&labels_path, 8)?;
        let n_labels = u64::from(reader.header(&labels_path, &head, LABELS_MAGIC, 1)?[0]);
        reader.check_raw_length(&labels_path, 8 + n_labels)?;
        if n_labels != count {
            return Err(reader.error(
                &labels_path,
                FileProblem::CountMismatch {
                    images: images_path,
                    n_images: count,
                    n_labels,
                },
            ));
        }
        Ok((count, (rows, cols)))
    };
    let (n_train, size) = split(FILES[0], FILES[1])?;
    let (_, test_size) = split(FILES[2], FILES[3])?;
    if test_size != size {
        let path = reader.locate(&files_dir, FILES[2]);
        return Err(reader.error(
            &path,
            FileProblem::SizeMismatch {
                size: test_size,
                train: size,
            },
        ));
    }
    Ok((n_train, size))
}

/// The directory with the files: `dir`, or torchvision's `dir/raw` or
/// `dir/<MNIST|FashionMNIST>/raw` when only that has the training images.
fn resolve(name: DataName, dir: &Path) -> PathBuf {
    let has_files = |d: &Path| {
        let base = d.join(FILES[0]);
        base.exists() || with_gz(&base).exists()
    };
    if has_files(dir) {
        return dir.to_path_buf();
    }
    let folder = match name {
        DataName::FashionMnist => "FashionMNIST",
        _ => "MNIST",
    };
    [dir.join("raw"), dir.join(folder).join("raw")]
        .into_iter()
        .find(|d| has_files(d))
        .unwrap_or_else(|| dir.to_path_buf())
}

fn with_gz(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// The contents of an images file.
struct Images {
    /// Row-major pixels, image after image.
    pixels: Vec<u8>,
    /// Images in the file.
    count: u64,
    /// Rows and columns of each image.
    size: (u32, u32),
}

struct Reader<'a> {
    name: DataName,
    dir: &'a Path,
}

impl Reader<'_> {
    fn error(&self, path: &Path, problem: FileProblem) -> DataError {
        DataError::file(path, problem, self.name, self.dir)
    }

    /// The raw file if it exists, else the `.gz` one if that exists, else
    /// the raw path (reported missing).
    fn locate(&self, dir: &Path, file: &str) -> PathBuf {
        let raw = dir.join(file);
        let gz = with_gz(&raw);
        if !raw.exists() && gz.exists() {
            gz
        } else {
            raw
        }
    }

    /// The contents of `path`, decompressed if it ends in `.gz`.
    fn contents(&self, path: &Path) -> Result<Vec<u8>, DataError> {
        let file = self.open(path)?;
        let mut bytes = Vec::new();
        if path.extension().is_some_and(|e| e == "gz") {
            MultiGzDecoder::new(io::BufReader::new(file))
                .read_to_end(&mut bytes)
                .map_err(|e| self.error(path, FileProblem::Gzip(e.to_string())))?;
        } else {
            io::BufReader::new(file)
                .read_to_end(&mut bytes)
                .map_err(|e| self.error(path, FileProblem::Unreadable(e)))?;
        }
        Ok(bytes)
    }

    /// Opens `path`, reporting a missing or unreadable file.
    fn open(&self, path: &Path) -> Result<File, DataError> {
        File::open(path).map_err(|e| {
            self.error(
                path,
                if e.kind() == io::ErrorKind::NotFound {
                    FileProblem::Missing
                } else {
                    FileProblem::Unreadable(e)
                },
            )
        })
    }

    /// The first `n` bytes of `path` (fewer if it is shorter),
    /// decompressed if it ends in `.gz`.
    fn prefix(&self, path: &Path, n: u64) -> Result<Vec<u8>, DataError> {
        let file = self.open(path)?;
        let mut bytes = Vec::new();
        if path.extension().is_some_and(|e| e == "gz") {
            MultiGzDecoder::new(io::BufReader::new(file))
                .take(n)
                .read_to_end(&mut bytes)
                .map_err(|e| self.error(path, FileProblem::Gzip(e.to_string())))?;
        } else {
            file.take(n)
                .read_to_end(&mut bytes)
                .map_err(|e| self.error(path, FileProblem::Unreadable(e)))?;
        }
        Ok(bytes)
    }

    /// Checks the length of a raw (not `.gz`) file against its header's;
    /// a compressed file's is checked when it is read.
    fn check_raw_length(&self, path: &Path, expected: u64) -> Result<(), DataError> {
        if path.extension().is_some_and(|e| e == "gz") {
            return Ok(());
        }
        let actual = std::fs::metadata(path)
            .map_err(|e| self.error(path, FileProblem::Unreadable(e)))?
            .len();
        self.compare_length(path, expected, actual)
    }

    /// A file of `actual` bytes where its header says `expected`.
    fn compare_length(&self, path: &Path, expected: u64, actual: u64) -> Result<(), DataError> {
        match actual.cmp(&expected) {
            std::cmp::Ordering::Less => {
                Err(self.error(path, FileProblem::Truncated { expected, actual }))
            }
            std::cmp::Ordering::Greater => {
                Err(self.error(path, FileProblem::TrailingData { expected, actual }))
            }
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Checks the header of an IDX file with `dims` dimensions and returns
    /// them (the count first).
    fn header(
        &self,
        path: &Path,
        bytes: &[u8],
        magic: u32,
        dims: usize,
    ) -> Result<Vec<u32>, DataError> {
        let header_len = 4 * (1 + dims);
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let truncated = FileProblem::Truncated {
            expected: header_len as u64,
            actual: bytes.len() as u64,
        };
        if bytes.len() < 4 {
            return Err(self.error(path, truncated));
        }
        if word(0) != magic {
            return Err(self.error(
                path,
                FileProblem::BadMagic {
                    found: word(0),
                    expected: magic,
                },
            ));
        }
        if bytes.len() < header_len {
            return Err(self.error(path, truncated));
        }
        Ok((0..dims).map(|d| word(4 + 4 * d)).collect())
    }

    /// Checks that `bytes` is exactly `header_len + data_len` long.
    fn check_length(
        &self,
        path: &Path,
        bytes: &[u8],
        header_len: u64,
        data_len: u64,
    ) -> Result<(), DataError> {
        self.compare_length(path, header_len + data_len, bytes.len() as u64)
    }

    /// The images of an images file.
    fn images(&self, path: &Path) -> Result<Images, DataError> {
        let mut bytes = self.contents(path)?;
        let dims = self.header(path, &bytes, IMAGES_MAGIC, 3)?;
        let (count, rows, cols) = (u64::from(dims[0]), dims[1], dims[2]);
        if rows == 0 || cols == 0 {
            return Err(self.error(path, FileProblem::BadDims { rows, cols }));
        }
        let pixels = count * u64::from(rows) * u64::from(cols);
        self.check_length(path, &bytes, 16, pixels)?;
        bytes.drain(..16);
        Ok(Images {
            pixels: bytes,
            count,
            size: (rows, cols),
        })
    }

    /// The labels of a labels file, each checked to be in range.
    fn labels(&self, path: &Path) -> Result<Vec<u8>, DataError> {
        let mut bytes = self.contents(path)?;
        let dims = self.header(path, &bytes, LABELS_MAGIC, 1)?;
        self.check_length(path, &bytes, 8, u64::from(dims[0]))?;
        bytes.drain(..8);
        let classes = self.name.classes();
        if let Some((index, &label)) = bytes
            .iter()
            .enumerate()
            .find(|(_, &l)| u32::from(l) >= classes)
        {
            return Err(self.error(
                path,
                FileProblem::LabelOutOfRange {
                    index: index as u64,
                    label,
                    classes,
                },
            ));
        }
        Ok(bytes)
    }
}
