//! CIFAR-10 and CIFAR-100 in their binary distribution
//! (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`).
//!
//! A file is a sequence of fixed-size records: the label byte(s), then 3072
//! pixel bytes, the 1024 red, 1024 green and 1024 blue values of a 32x32
//! image, each plane row-major. CIFAR-10 records have one label byte (3073
//! bytes); CIFAR-100 records a coarse then a fine label byte (3074 bytes), and
//! the fine label is the one used. A file whose length is not a multiple of
//! the record size is refused whole: it is never decoded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{DataError, FileProblem};
use super::real::{DataName, Split};

/// Pixel bytes per image.
pub const PIXELS: usize = 3 * 32 * 32;

/// The files of one CIFAR variant.
struct Layout {
    name: DataName,
    /// The folder the archive extracts to.
    folder: &'static str,
    train: &'static [&'static str],
    test: &'static str,
    /// Label bytes before the pixels of each record.
    label_bytes: usize,
    /// Which of them is the label used.
    label_at: usize,
}

const CIFAR10: Layout = Layout {
    name: DataName::Cifar10,
    folder: "cifar-10-batches-bin",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: "test_batch.bin",
    label_bytes: 1,
    label_at: 0,
};

const CIFAR100: Layout = Layout {
    name: DataName::Cifar100,
    folder: "cifar-100-binary",
    train: &["train.bin"],
    test: "test.bin",
    label_bytes: 2,
    label_at: 1,
};

/// The folder `cifar-10-binary.tar.gz` extracts to.
pub const CIFAR10_FOLDER: &str = CIFAR10.folder;
/// The folder `cifar-100-binary.tar.gz` extracts to.
pub const CIFAR100_FOLDER: &str = CIFAR100.folder;

/// Reads CIFAR-10: `(train, test)`, 50000 and 10000 examples for the real
/// files (any positive number of records is accepted). Images are
/// `Uint8 [N, 3, 32, 32]`, labels `Int64 [N]` in `0..10`, on the CPU.
///
/// `dir` holds `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`
/// (the training set is the five batches in order), or holds the archive's
/// folder `cifar-10-batches-bin/` with them.
pub fn read_cifar10(dir: &Path) -> Result<(Split, Split), DataError> {
    read(&CIFAR10, dir)
}

/// Reads CIFAR-100 with its fine labels: `(train, test)`, 50000 and 10000
/// examples for the real files. Images are `Uint8 [N, 3, 32, 32]`, labels
/// `Int64 [N]` in `0..100`, on the CPU.
///
/// `dir` holds `train.bin` and `test.bin`, or holds the archive's folder
/// `cifar-100-binary/` with them.
pub fn read_cifar100(dir: &Path) -> Result<(Split, Split), DataError> {
    read(&CIFAR100, dir)
}

/// Where the files are: `dir` itself if it has any of them, else the
/// archive's folder inside it if that exists, else `dir` (whose missing
/// files the errors then name).
fn resolve(layout: &Layout, dir: &Path) -> PathBuf {
    let has_files = |d: &Path| {
        layout
            .train
            .iter()
            .chain([&layout.test])
            .any(|f| d.join(f).exists())
    };
    let nested = dir.join(layout.folder);
    if !has_files(dir) && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Checks the files of CIFAR-10 or CIFAR-100 (`name`) in `dir` from their
/// lengths, without reading them: returns the number of training records.
pub(crate) fn probe(name: DataName, dir: &Path) -> Result<u64, DataError> {
    let layout = if name == DataName::Cifar100 {
        &CIFAR100
    } else {
        &CIFAR10
    };
    let files_dir = resolve(layout, dir);
    let record = (layout.label_bytes + PIXELS) as u64;
    let records = |file: &str| -> Result<u64, DataError> {
        let path = files_dir.join(file);
        let error = |problem| DataError::file(&path, problem, layout.name, dir);
        let len = fs::metadata(&path)
            .map_err(|e| {
                error(if e.kind() == io::ErrorKind::NotFound {
                    FileProblem::Missing
                } else {
                    FileProblem::Unreadable(e)
                })
            })?
            .len();
        if len == 0 || len % record != 0 {
            return Err(error(FileProblem::RecordSize { len, record }));
        }
        Ok(len / record)
    };
    records(layout.test)?;
    layout.train.iter().map(|f| records(f)).sum()
}

fn read(layout: &Layout, dir: &Path) -> Result<(Split, Split), DataError> {
    let files_dir = resolve(layout, dir);
    let mut train = Records::default();
    for file in layout.train {
        train.read(layout, &files_dir.join(file), dir)?;
    }
    let mut test = Records::default();
    test.read(layout, &files_dir.join(layout.test), dir)?;
    Ok((train.into_split(), test.into_split()))
}

/// Decoded records, images back to back.
#[derive(Default)]
struct Records {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Records {
    /// Appends the records of the file at `path`, after checking all of it.
    fn read(&mut self, layout: &Layout, path: &Path, dir: &Path) -> Result<(), DataError> {
        let error = |problem| DataError::file(path, problem, layout.name, dir);
        let bytes = fs::read(path).map_err(|e| {
            error(if e.kind() == io::ErrorKind::NotFound {
                FileProblem::Missing
            } else {
                FileProblem::Unreadable(e)
            })
        })?;
        let record = layout.label_bytes + PIXELS;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(error(FileProblem::RecordSize {
                len: bytes.len() as u64,
                record: record as u64,
            }));
        }
        let classes = layout.name.classes();
        let n = bytes.len() / record;
        self.pixels.reserve(n * PIXELS);
        self.labels.reserve(n);
        for (index, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[layout.label_at];
            if u32::from(label) >= classes {
                return Err(error(FileProblem::LabelOutOfRange {
                    index: index as u64,
                    label,
                    classes,
                }));
            }
            self.labels.push(label);
            self.pixels.extend_from_slice(&rec[layout.label_bytes..]);
        }
        Ok(())
    }

    fn into_split(self) -> Split {
        Split::from_raw(&self.pixels, &self.labels, [3, 32, 32])
    }
}
