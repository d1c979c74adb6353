//! The real data sets: readers on small files written here in the real
//! formats (CIFAR binary records, MNIST IDX, raw and `.gz`), every malformed
//! case they must refuse, the batch augmentation on hand-made images, and
//! `data download` against an HTTP server on 127.0.0.1 started by the test,
//! serving generated archives.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use swalp_cli::data::augment::{
    cifar_train_augment, crop_flip, normalize, random_crop_flip, CropFlip, CIFAR_MEAN, CIFAR_STD,
};
use swalp_cli::data::cifar::{read_cifar10, read_cifar100};
use swalp_cli::data::download::{check_mirror_url, download, Origin, RemoteFile, Source};
use swalp_cli::data::error::{DataError, FileProblem};
use swalp_cli::data::mnist::{read_fashion_mnist, read_mnist};
use swalp_cli::data::real::{DataName, Split};
use swalp_core::tch::{Kind, Tensor};
use swalp_core::QuantRng;
use tempfile::TempDir;

// ------------------------------------------------------------ helpers

fn tmp() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn values_u8(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.flatten(0, -1)).expect("u8 values")
}

fn values_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.flatten(0, -1)).expect("i64 values")
}

fn values_f32(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("f32 values")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", md5::compute(bytes))
}

/// The error of a read that must fail, with its message checked to be one
/// line naming `path` and ending with the download command for `dir`.
fn read_error<T: std::fmt::Debug>(
    result: Result<T, DataError>,
    path: &Path,
    name: &str,
    dir: &Path,
) -> (FileProblem, String) {
    let err = result.expect_err("the read must fail");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.contains(&path.display().to_string()),
        "names {}: {message}",
        path.display()
    );
    let fix = format!("swalp-cli data download {name} --dir {}", dir.display());
    assert!(message.contains(&fix), "gives the fix `{fix}`: {message}");
    match err {
        DataError::File {
            path: p, problem, ..
        } => {
            assert_eq!(p, path);
            (problem, message)
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

// ------------------------------------------------------------ CIFAR files

/// A CIFAR record: the label bytes, then pixel `(c, y, x)` = `pixel(c, y, x)`.
fn cifar_record(labels: &[u8], pixel: impl Fn(usize, usize, usize) -> u8) -> Vec<u8> {
    let mut rec = labels.to_vec();
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                rec.push(pixel(c, y, x));
            }
        }
    }
    rec
}

/// Example `i`'s pattern: distinct per example, channel, row and column.
fn pattern(i: usize) -> impl Fn(usize, usize, usize) -> u8 {
    move |c, y, x| ((i * 37 + c * 101 + y * 7 + x) % 256) as u8
}

const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Writes CIFAR-10 files into `dir`: batch `b` (0..5) holds `b + 1` records,
/// example `i` overall (train, then test with 2 records) has label
/// `i % 10` and [`pattern`]`(i)`. Returns the 15 + 2 labels.
fn write_cifar10(dir: &Path) -> Vec<u8> {
    fs::create_dir_all(dir).unwrap();
    let mut labels = Vec::new();
    let mut i = 0;
    for (b, file) in CIFAR10_TRAIN.iter().enumerate() {
        let mut bytes = Vec::new();
        for _ in 0..=b {
            bytes.extend(cifar_record(&[(i % 10) as u8], pattern(i)));
            labels.push((i % 10) as u8);
            i += 1;
        }
        fs::write(dir.join(file), bytes).unwrap();
    }
    let mut bytes = Vec::new();
    for _ in 0..2 {
        bytes.extend(cifar_record(&[(i % 10) as u8], pattern(i)));
        labels.push((i % 10) as u8);
        i += 1;
    }
    fs::write(dir.join("test_batch.bin"), bytes).unwrap();
    labels
}

/// Writes CIFAR-100 files: 3 training and 2 test records; example `i` has
/// coarse label `i % 20`, fine label `99 - 7·i` and [`pattern`]`(i)`.
fn write_cifar100(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let record = |i: usize| cifar_record(&[(i % 20) as u8, (99 - 7 * i) as u8], pattern(i));
    fs::write(
        dir.join("train.bin"),
        [record(0), record(1), record(2)].concat(),
    )
    .unwrap();
    fs::write(dir.join("test.bin"), [record(3), record(4)].concat()).unwrap();
}

fn check_pattern(split: &Split, first: usize) {
    let n = split.len() as usize;
    let pixels = values_u8(&split.images);
    for i in 0..n {
        let p = pattern(first + i);
        for (c, y, x) in [(0, 0, 0), (0, 0, 31), (1, 5, 7), (2, 31, 0), (2, 31, 31)] {
            assert_eq!(
                pixels[((i * 3 + c) * 32 + y) * 32 + x],
                p(c, y, x),
                "example {i} pixel ({c}, {y}, {x})"
            );
        }
    }
}

#[test]
fn cifar10_planes_are_red_green_blue_row_major() {
    let dir = tmp();
    write_cifar10(dir.path());
    // Overwrite the test batch with one hand-made record: three lit pixels.
    let mut rec = vec![0u8; 3073];
    rec[0] = 7; // label
    rec[1 + 1] = 11; // R, row 0, column 1
    rec[1 + 1024 + 2 * 32 + 3] = 22; // G, row 2, column 3
    rec[1 + 2048 + 31 * 32 + 31] = 33; // B, row 31, column 31
    fs::write(dir.path().join("test_batch.bin"), &rec).unwrap();
    let (_, test) = read_cifar10(dir.path()).unwrap();
    assert_eq!(test.images.size(), [1, 3, 32, 32]);
    assert_eq!(test.images.kind(), Kind::Uint8);
    assert_eq!(test.labels.kind(), Kind::Int64);
    assert_eq!(values_i64(&test.labels), [7]);
    let img = &test.images;
    assert_eq!(img.int64_value(&[0, 0, 0, 1]), 11);
    assert_eq!(img.int64_value(&[0, 1, 2, 3]), 22);
    assert_eq!(img.int64_value(&[0, 2, 31, 31]), 33);
    assert_eq!(
        img.to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]),
        66
    );
}

#[test]
fn cifar10_reads_the_five_batches_in_order_and_the_test_batch() {
    let dir = tmp();
    let labels = write_cifar10(dir.path());
    let (train, test) = read_cifar10(dir.path()).unwrap();
    assert_eq!(train.len(), 15);
    assert_eq!(test.len(), 2);
    assert_eq!(train.images.size(), [15, 3, 32, 32]);
    let as_i64 = |l: &[u8]| l.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
    assert_eq!(values_i64(&train.labels), as_i64(&labels[..15]));
    assert_eq!(values_i64(&test.labels), as_i64(&labels[15..]));
    check_pattern(&train, 0);
    check_pattern(&test, 15);
    assert_eq!(train.images.device(), swalp_core::tch::Device::Cpu);
}

#[test]
fn cifar_readers_accept_the_folder_above_the_archive_folder() {
    let dir = tmp();
    write_cifar10(&dir.path().join("cifar-10-batches-bin"));
    write_cifar100(&dir.path().join("cifar-100-binary"));
    let (train, _) = read_cifar10(dir.path()).unwrap();
    assert_eq!(train.len(), 15);
    let (train, test) = read_cifar100(dir.path()).unwrap();
    assert_eq!((train.len(), test.len()), (3, 2));
    let (train, _) = swalp_cli::data::read(DataName::Cifar10, dir.path()).unwrap();
    assert_eq!(train.len(), 15);
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tmp();
    write_cifar100(dir.path());
    let (train, test) = read_cifar100(dir.path()).unwrap();
    assert_eq!(values_i64(&train.labels), [99, 92, 85]);
    assert_eq!(values_i64(&test.labels), [78, 71]);
    assert_eq!(train.images.size(), [3, 3, 32, 32]);
    check_pattern(&train, 0);
    check_pattern(&test, 3);
}

#[test]
fn cifar_files_of_the_wrong_record_size_are_refused() {
    let dir = tmp();
    write_cifar10(dir.path());
    let path = dir.path().join("data_batch_3.bin");
    // Truncated: two records and one byte short.
    fs::write(&path, vec![0u8; 2 * 3073 - 1]).unwrap();
    let (problem, message) = read_error(read_cifar10(dir.path()), &path, "cifar10", dir.path());
    assert!(
        matches!(
            problem,
            FileProblem::RecordSize {
                len: 6145,
                record: 3073
            }
        ),
        "{problem:?}"
    );
    assert!(message.contains("wrong record size"), "{message}");
    assert!(message.contains("3073"), "{message}");
    // CIFAR-100 records (3074 bytes) in a CIFAR-10 file.
    fs::write(&path, vec![0u8; 3 * 3074]).unwrap();
    let (problem, _) = read_error(read_cifar10(dir.path()), &path, "cifar10", dir.path());
    assert!(
        matches!(problem, FileProblem::RecordSize { .. }),
        "{problem:?}"
    );
    // An empty file is no data set either.
    fs::write(&path, b"").unwrap();
    let (problem, _) = read_error(read_cifar10(dir.path()), &path, "cifar10", dir.path());
    assert!(
        matches!(problem, FileProblem::RecordSize { len: 0, .. }),
        "{problem:?}"
    );

    let dir = tmp();
    write_cifar100(dir.path());
    let path = dir.path().join("test.bin");
    fs::write(&path, vec![0u8; 3073 * 2]).unwrap();
    let (problem, message) = read_error(read_cifar100(dir.path()), &path, "cifar100", dir.path());
    assert!(
        matches!(problem, FileProblem::RecordSize { record: 3074, .. }),
        "{problem:?}"
    );
    assert!(message.contains("3074"), "{message}");
}

#[test]
fn missing_cifar_files_name_the_path_and_the_download_command() {
    let dir = tmp();
    let (problem, message) = read_error(
        read_cifar10(dir.path()),
        &dir.path().join("data_batch_1.bin"),
        "cifar10",
        dir.path(),
    );
    assert!(matches!(problem, FileProblem::Missing), "{problem:?}");
    assert!(message.contains("no such file"), "{message}");

    write_cifar10(dir.path());
    let test = dir.path().join("test_batch.bin");
    fs::remove_file(&test).unwrap();
    let (problem, _) = read_error(read_cifar10(dir.path()), &test, "cifar10", dir.path());
    assert!(matches!(problem, FileProblem::Missing));

    let missing = dir.path().join("nowhere");
    read_error(
        read_cifar100(&missing),
        &missing.join("train.bin"),
        "cifar100",
        &missing,
    );
}

#[test]
fn cifar_labels_out_of_range_are_errors() {
    let dir = tmp();
    write_cifar10(dir.path());
    let path = dir.path().join("data_batch_2.bin");
    let ok = cifar_record(&[9], pattern(0));
    let bad = cifar_record(&[10], pattern(1));
    fs::write(&path, [ok.clone(), bad].concat()).unwrap();
    let (problem, message) = read_error(read_cifar10(dir.path()), &path, "cifar10", dir.path());
    assert!(
        matches!(
            problem,
            FileProblem::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10
            }
        ),
        "{problem:?}"
    );
    assert!(message.contains("label out of range"), "{message}");

    let dir = tmp();
    write_cifar100(dir.path());
    let path = dir.path().join("train.bin");
    // Fine label 99 is fine, 100 is not; the coarse label is not the one used.
    fs::write(&path, cifar_record(&[19, 99], pattern(0))).unwrap();
    assert!(read_cifar100(dir.path()).is_ok());
    fs::write(&path, cifar_record(&[0, 100], pattern(0))).unwrap();
    let (problem, _) = read_error(read_cifar100(dir.path()), &path, "cifar100", dir.path());
    assert!(
        matches!(
            problem,
            FileProblem::LabelOutOfRange {
                label: 100,
                classes: 100,
                ..
            }
        ),
        "{problem:?}"
    );
}

// ------------------------------------------------------------ IDX files

fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [0x0000_0803u32, count, rows, cols] {
        bytes.extend(word.to_be_bytes());
    }
    bytes.extend(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [0x0000_0801u32, labels.len() as u32] {
        bytes.extend(word.to_be_bytes());
    }
    bytes.extend(labels);
    bytes
}

/// Pixel `(y, x)` of example `i`.
fn idx_pixel(i: usize, y: usize, x: usize) -> u8 {
    ((i * 59 + y * 28 + x) % 256) as u8
}

fn idx_pixels(n: usize) -> Vec<u8> {
    let mut pixels = Vec::new();
    for i in 0..n {
        for y in 0..28 {
            for x in 0..28 {
                pixels.push(idx_pixel(i, y, x));
            }
        }
    }
    pixels
}

const TRAIN_LABELS: [u8; 3] = [5, 0, 9];
const TEST_LABELS: [u8; 2] = [3, 7];

/// The four IDX files: 3 training and 2 test images, as (name, bytes).
fn idx_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "train-images-idx3-ubyte",
            idx_images(3, 28, 28, &idx_pixels(3)),
        ),
        ("train-labels-idx1-ubyte", idx_labels(&TRAIN_LABELS)),
        (
            "t10k-images-idx3-ubyte",
            idx_images(2, 28, 28, &idx_pixels(2)),
        ),
        ("t10k-labels-idx1-ubyte", idx_labels(&TEST_LABELS)),
    ]
}

/// Writes the IDX files into `dir`, gzipped (`name.gz`) where `gz` says.
fn write_idx(dir: &Path, gz: [bool; 4]) {
    fs::create_dir_all(dir).unwrap();
    for ((name, bytes), gz) in idx_files().into_iter().zip(gz) {
        if gz {
            fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn check_idx(train: &Split, test: &Split) {
    assert_eq!(train.images.size(), [3, 1, 28, 28]);
    assert_eq!(test.images.size(), [2, 1, 28, 28]);
    assert_eq!(train.images.kind(), Kind::Uint8);
    assert_eq!(values_i64(&train.labels), [5, 0, 9]);
    assert_eq!(values_i64(&test.labels), [3, 7]);
    // Hand-checked pixels: (i, y, x) -> (i·59 + y·28 + x) mod 256.
    assert_eq!(train.images.int64_value(&[0, 0, 0, 0]), 0);
    assert_eq!(train.images.int64_value(&[0, 0, 0, 27]), 27);
    assert_eq!(train.images.int64_value(&[0, 0, 1, 0]), 28);
    assert_eq!(
        train.images.int64_value(&[2, 0, 27, 27]),
        (118 + 756 + 27) % 256
    );
    assert_eq!(test.images.int64_value(&[1, 0, 3, 4]), 59 + 84 + 4);
    assert_eq!(values_u8(&train.images), idx_pixels(3));
    assert_eq!(values_u8(&test.images), idx_pixels(2));
}

#[test]
fn mnist_raw_files_decode() {
    let dir = tmp();
    write_idx(dir.path(), [false; 4]);
    let (train, test) = read_mnist(dir.path()).unwrap();
    check_idx(&train, &test);
}

#[test]
fn mnist_gz_files_decode_the_same() {
    let dir = tmp();
    write_idx(dir.path(), [true; 4]);
    let (train, test) = read_mnist(dir.path()).unwrap();
    check_idx(&train, &test);
    let dir = tmp();
    write_idx(dir.path(), [true, false, false, true]);
    let (train, test) = read_fashion_mnist(dir.path()).unwrap();
    check_idx(&train, &test);
}

#[test]
fn mnist_accepts_torchvision_layout() {
    let dir = tmp();
    write_idx(&dir.path().join("MNIST").join("raw"), [true; 4]);
    let (train, test) = swalp_cli::data::read(DataName::Mnist, dir.path()).unwrap();
    check_idx(&train, &test);
    let dir = tmp();
    write_idx(&dir.path().join("FashionMNIST").join("raw"), [false; 4]);
    let (train, test) = swalp_cli::data::read(DataName::FashionMnist, dir.path()).unwrap();
    check_idx(&train, &test);
}

/// Writes the IDX files (raw or gz), replaces file `which` by `bytes` in the
/// same form, and returns the error of reading MNIST with the replaced path.
fn idx_with(which: usize, bytes: Vec<u8>, gz: bool) -> (FileProblem, String) {
    let dir = tmp();
    write_idx(dir.path(), [gz; 4]);
    let name = idx_files()[which].0;
    let path = if gz {
        let p = dir.path().join(format!("{name}.gz"));
        fs::write(&p, gzip(&bytes)).unwrap();
        p
    } else {
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        p
    };
    read_error(read_mnist(dir.path()), &path, "mnist", dir.path())
}

#[test]
fn truncated_idx_files_are_refused() {
    for gz in [false, true] {
        // Images: header says 3 images, 2.5 are there.
        let bytes = idx_images(3, 28, 28, &idx_pixels(3)[..784 * 5 / 2]);
        let (problem, message) = idx_with(0, bytes, gz);
        assert!(
            matches!(
                problem,
                FileProblem::Truncated {
                    expected: 2368,
                    actual: 1976
                }
            ),
            "{problem:?}"
        );
        assert!(
            message.contains("truncated: expected 2368 bytes, got 1976"),
            "{message}"
        );
        // Labels: one label short.
        let mut bytes = idx_labels(&TEST_LABELS);
        bytes.pop();
        let (problem, _) = idx_with(3, bytes, gz);
        assert!(
            matches!(
                problem,
                FileProblem::Truncated {
                    expected: 10,
                    actual: 9
                }
            ),
            "{problem:?}"
        );
        // A header cut short.
        let (problem, _) = idx_with(0, idx_images(3, 28, 28, &[])[..10].to_vec(), gz);
        assert!(
            matches!(
                problem,
                FileProblem::Truncated {
                    expected: 16,
                    actual: 10
                }
            ),
            "{problem:?}"
        );
        let (problem, _) = idx_with(1, vec![0, 0], gz);
        assert!(
            matches!(
                problem,
                FileProblem::Truncated {
                    expected: 8,
                    actual: 2
                }
            ),
            "{problem:?}"
        );
    }
}

#[test]
fn idx_files_longer_than_their_header_are_refused() {
    let mut bytes = idx_images(3, 28, 28, &idx_pixels(3));
    bytes.push(0);
    let (problem, _) = idx_with(0, bytes, false);
    assert!(
        matches!(
            problem,
            FileProblem::TrailingData {
                expected: 2368,
                actual: 2369
            }
        ),
        "{problem:?}"
    );
}

#[test]
fn idx_files_with_the_wrong_magic_are_refused() {
    // The labels file where the images file should be, and vice versa.
    let (problem, message) = idx_with(0, idx_labels(&TRAIN_LABELS), false);
    assert!(
        matches!(
            problem,
            FileProblem::BadMagic {
                found: 0x801,
                expected: 0x803
            }
        ),
        "{problem:?}"
    );
    assert!(message.contains("bad magic 0x00000801"), "{message}");
    assert!(message.contains("0x00000803"), "{message}");
    let (problem, _) = idx_with(3, idx_images(2, 28, 28, &idx_pixels(2)), true);
    assert!(
        matches!(
            problem,
            FileProblem::BadMagic {
                found: 0x803,
                expected: 0x801
            }
        ),
        "{problem:?}"
    );
    // Little-endian magic.
    let mut bytes = idx_labels(&TEST_LABELS);
    bytes[..4].copy_from_slice(&0x0000_0801u32.to_le_bytes());
    let (problem, message) = idx_with(3, bytes, false);
    assert!(matches!(
        problem,
        FileProblem::BadMagic {
            found: 0x0108_0000,
            ..
        }
    ));
    assert!(message.contains("0x01080000"), "{message}");
}

#[test]
fn idx_images_of_any_size_are_read() {
    let dir = tmp();
    write_idx(dir.path(), [false; 4]);
    let pixels: Vec<u8> = (0..3 * 64).map(|i| i as u8).collect();
    fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx_images(3, 8, 8, &pixels),
    )
    .unwrap();
    fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        idx_images(2, 8, 8, &pixels[..128]),
    )
    .unwrap();
    let (train, test) = swalp_cli::data::mnist::read_mnist(dir.path()).unwrap();
    assert_eq!(train.images.size(), [3, 1, 8, 8]);
    assert_eq!(test.images.size(), [2, 1, 8, 8]);
    // Row-major: pixel (row 1, column 2) of the second image.
    assert_eq!(train.images.int64_value(&[1, 0, 1, 2]), 64 + 8 + 2);
}

#[test]
fn idx_images_need_rows_columns_and_one_size() {
    let (problem, message) = idx_with(2, idx_images(2, 0, 28, &[]), false);
    assert!(
        matches!(problem, FileProblem::BadDims { rows: 0, cols: 28 }),
        "{problem:?}"
    );
    assert!(
        message.contains("0x28; rows and columns must be at least 1"),
        "{message}"
    );
    let (problem, message) = idx_with(2, idx_images(2, 32, 32, &vec![0; 2 * 1024]), false);
    assert!(
        matches!(
            problem,
            FileProblem::SizeMismatch {
                size: (32, 32),
                train: (28, 28)
            }
        ),
        "{problem:?}"
    );
    assert!(
        message.contains("32x32, the training images 28x28"),
        "{message}"
    );
}

#[test]
fn idx_counts_must_match() {
    let dir = tmp();
    write_idx(dir.path(), [false; 4]);
    let labels = dir.path().join("train-labels-idx1-ubyte");
    fs::write(&labels, idx_labels(&[1, 2])).unwrap();
    let (problem, message) = read_error(read_mnist(dir.path()), &labels, "mnist", dir.path());
    assert!(
        matches!(
            problem,
            FileProblem::CountMismatch {
                n_images: 3,
                n_labels: 2,
                ..
            }
        ),
        "{problem:?}"
    );
    assert!(message.contains("count mismatch"), "{message}");
    assert!(message.contains("train-images-idx3-ubyte"), "{message}");
}

#[test]
fn idx_labels_out_of_range_are_errors() {
    let (problem, message) = idx_with(1, idx_labels(&[1, 10, 2]), true);
    assert!(
        matches!(
            problem,
            FileProblem::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10
            }
        ),
        "{problem:?}"
    );
    assert!(message.contains("label out of range"), "{message}");
}

#[test]
fn corrupt_gz_files_are_refused() {
    let dir = tmp();
    write_idx(dir.path(), [true; 4]);
    let path = dir.path().join("t10k-images-idx3-ubyte.gz");
    let gz = fs::read(&path).unwrap();
    fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let (problem, message) = read_error(read_mnist(dir.path()), &path, "mnist", dir.path());
    assert!(matches!(problem, FileProblem::Gzip(_)), "{problem:?}");
    assert!(message.contains("gzip"), "{message}");
    fs::write(&path, b"not gzip at all").unwrap();
    let (problem, _) = read_error(read_mnist(dir.path()), &path, "mnist", dir.path());
    assert!(matches!(problem, FileProblem::Gzip(_)), "{problem:?}");
}

#[test]
fn missing_idx_files_name_the_path_and_the_download_command() {
    let dir = tmp();
    let (problem, message) = read_error(
        read_fashion_mnist(dir.path()),
        &dir.path().join("train-images-idx3-ubyte"),
        "fashion-mnist",
        dir.path(),
    );
    assert!(matches!(problem, FileProblem::Missing));
    assert!(message.starts_with("Fashion-MNIST file"), "{message}");
    write_idx(dir.path(), [true; 4]);
    let gone = dir.path().join("t10k-labels-idx1-ubyte.gz");
    fs::remove_file(gone).unwrap();
    read_error(
        read_mnist(dir.path()),
        &dir.path().join("t10k-labels-idx1-ubyte"),
        "mnist",
        dir.path(),
    );
}

// ------------------------------------------------------------ augmentation

/// A `[1, 1, H, W]` f32 image from rows.
fn image(rows: &[&[f32]]) -> Tensor {
    let (h, w) = (rows.len() as i64, rows[0].len() as i64);
    Tensor::from_slice(&rows.concat()).view([1, 1, h, w])
}

fn rows_of(t: &Tensor) -> Vec<Vec<f32>> {
    let w = t.size()[3] as usize;
    values_f32(t).chunks(w).map(<[f32]>::to_vec).collect()
}

const IMG: [&[f32]; 3] = [&[1., 2., 3., 4.], &[5., 6., 7., 8.], &[9., 10., 11., 12.]];

fn cf(dx: i64, dy: i64, flip: bool) -> CropFlip {
    CropFlip { dx, dy, flip }
}

#[test]
fn crop_at_offset_pad_without_flip_is_the_identity() {
    let x = image(&IMG);
    for pad in [0, 1, 4] {
        let y = crop_flip(&x, pad, &[cf(pad, pad, false)]);
        assert_eq!(rows_of(&y), rows_of(&x), "pad {pad}");
    }
}

#[test]
fn crops_shift_the_image_and_fill_with_zeros() {
    let x = image(&IMG);
    // Window at the padded image's top-left corner: the image moves one
    // pixel down and right.
    assert_eq!(
        rows_of(&crop_flip(&x, 1, &[cf(0, 0, false)])),
        [[0., 0., 0., 0.], [0., 1., 2., 3.], [0., 5., 6., 7.]]
    );
    // Bottom-right corner: up and left.
    assert_eq!(
        rows_of(&crop_flip(&x, 1, &[cf(2, 2, false)])),
        [[6., 7., 8., 0.], [10., 11., 12., 0.], [0., 0., 0., 0.]]
    );
    // Two columns right, same rows, padding 2.
    assert_eq!(
        rows_of(&crop_flip(&x, 2, &[cf(4, 2, false)])),
        [[3., 4., 0., 0.], [7., 8., 0., 0.], [11., 12., 0., 0.]]
    );
    // A shift larger than the image leaves only padding.
    assert_eq!(
        rows_of(&crop_flip(&x, 4, &[cf(8, 0, false)])),
        vec![vec![0.; 4]; 3]
    );
}

#[test]
fn flips_mirror_the_crop_left_to_right() {
    let x = image(&IMG);
    assert_eq!(
        rows_of(&crop_flip(&x, 1, &[cf(1, 1, true)])),
        [[4., 3., 2., 1.], [8., 7., 6., 5.], [12., 11., 10., 9.]]
    );
    // Crop first (one down and right), then mirror.
    assert_eq!(
        rows_of(&crop_flip(&x, 1, &[cf(0, 0, true)])),
        [[0., 0., 0., 0.], [3., 2., 1., 0.], [7., 6., 5., 0.]]
    );
    assert_eq!(
        rows_of(&crop_flip(&x, 1, &[cf(2, 1, true)])),
        [[0., 4., 3., 2.], [0., 8., 7., 6.], [0., 12., 11., 10.]]
    );
}

#[test]
fn each_example_gets_its_own_crop_on_every_channel() {
    // Two examples, two channels: channel 1 is channel 0 plus 100.
    let base = values_f32(&image(&IMG));
    let mut data = Vec::new();
    for _ in 0..2 {
        data.extend(base.iter().copied());
        data.extend(base.iter().map(|v| v + 100.));
    }
    let batch = Tensor::from_slice(&data).view([2, 2, 3, 4]);
    let out = crop_flip(&batch, 1, &[cf(1, 1, true), cf(0, 2, false)]);
    assert_eq!(out.size(), [2, 2, 3, 4]);
    let v = values_f32(&out);
    let first: Vec<f32> = [4., 3., 2., 1., 8., 7., 6., 5., 12., 11., 10., 9.].to_vec();
    let second: Vec<f32> = [0., 5., 6., 7., 0., 9., 10., 11., 0., 0., 0., 0.].to_vec();
    let plus = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|&x| if x == 0. { 0. } else { x + 100. })
            .collect()
    };
    assert_eq!(v[0..12], first[..]);
    assert_eq!(v[12..24], plus(&first)[..]);
    assert_eq!(v[24..36], second[..]);
    assert_eq!(v[36..48], plus(&second)[..]);
}

#[test]
fn crops_keep_uint8_images_uint8() {
    let x = image(&IMG).to_kind(Kind::Uint8);
    let y = crop_flip(&x, 1, &[cf(0, 0, true)]);
    assert_eq!(y.kind(), Kind::Uint8);
    assert_eq!(values_u8(&y), [0, 0, 0, 0, 3, 2, 1, 0, 7, 6, 5, 0]);
}

#[test]
fn draw_bits_select_offsets_and_flip_as_documented() {
    assert_eq!(CropFlip::from_draw(0, 4), cf(0, 0, false));
    assert_eq!(CropFlip::from_draw(u32::MAX, 4), cf(8, 8, true));
    assert_eq!(CropFlip::from_draw(1 << 31, 4), cf(0, 0, true));
    // dx from the low 16 bits: (0x8000 · 9) >> 16 = 4; dy from bits 16..=30:
    // (0x4000 · 9) >> 15 = 4.
    assert_eq!(CropFlip::from_draw(0x4000_8000, 4), cf(4, 4, false));
    assert_eq!(CropFlip::from_draw(0x0000_FFFF, 4), cf(8, 0, false));
    assert_eq!(CropFlip::from_draw(0x7FFF_0000, 4), cf(0, 8, false));
    // Padding 0: no shift, only the flip.
    assert_eq!(CropFlip::from_draw(u32::MAX, 0), cf(0, 0, true));
    // Every offset equally likely up to one count in 2^16 (dx) / 2^15 (dy).
    let mut dx = [0u32; 9];
    for low in 0..=0xFFFFu32 {
        dx[CropFlip::from_draw(low, 4).dx as usize] += 1;
    }
    assert!(dx.iter().all(|&c| c == 7281 || c == 7282), "{dx:?}");
    let mut dy = [0u32; 9];
    for mid in 0..=0x7FFFu32 {
        dy[CropFlip::from_draw(mid << 16, 4).dy as usize] += 1;
    }
    assert!(dy.iter().all(|&c| c == 3640 || c == 3641), "{dy:?}");
}

#[test]
fn random_crops_follow_the_draws_reproducibly() {
    let stream = QuantRng::new(5).next_stream();
    let draws: Vec<u32> = (0..6).map(|i| stream.bits(i)).collect();
    let batch = Tensor::arange(6 * 3 * 32 * 32, (Kind::Int64, swalp_core::tch::Device::Cpu))
        .remainder(251)
        .to_kind(Kind::Uint8)
        .view([6, 3, 32, 32]);
    let a = cifar_train_augment(&batch, &draws);
    let b = random_crop_flip(&batch, 4, &draws);
    let params: Vec<CropFlip> = draws.iter().map(|&d| CropFlip::from_draw(d, 4)).collect();
    let c = crop_flip(&batch, 4, &params);
    assert!(a.equal(&b) && a.equal(&c));
    assert!(a.equal(&cifar_train_augment(&batch, &draws)));
    // Each example against a direct per-pixel computation.
    let src = values_u8(&batch);
    let out = values_u8(&a);
    for (i, p) in params.iter().enumerate() {
        for ch in 0..3 {
            for y in 0..32i64 {
                for x in 0..32i64 {
                    let xs = if p.flip { 31 - x } else { x } + p.dx - 4;
                    let ys = y + p.dy - 4;
                    let expected = if (0..32).contains(&xs) && (0..32).contains(&ys) {
                        src[((i * 3 + ch) * 32 + ys as usize) * 32 + xs as usize]
                    } else {
                        0
                    };
                    let got = out[((i * 3 + ch) * 32 + y as usize) * 32 + x as usize];
                    assert_eq!(got, expected, "example {i} {p:?} ({ch}, {y}, {x})");
                }
            }
        }
    }
    // The draws differ, so the crops do.
    assert!(params.iter().collect::<HashSet<_>>().len() > 1);
}

#[test]
fn empty_batches_pass_through() {
    let batch = Tensor::zeros([0, 3, 32, 32], (Kind::Float, swalp_core::tch::Device::Cpu));
    assert_eq!(random_crop_flip(&batch, 4, &[]).size(), [0, 3, 32, 32]);
}

#[test]
#[should_panic(expected = "crops for a batch of")]
fn one_draw_per_example_is_required() {
    let x = image(&IMG);
    let _ = random_crop_flip(&x, 1, &[1, 2]);
}

#[test]
fn normalize_is_torchvision_to_tensor_then_normalize_in_f32() {
    // Two RGB 1x2 images with extreme and middle values.
    let pixels: Vec<u8> = vec![0, 255, 128, 1, 2, 254, 10, 20, 30, 40, 50, 60];
    let images = Tensor::from_slice(&pixels).view([2, 3, 1, 2]);
    let out = normalize(&images, &CIFAR_MEAN, &CIFAR_STD);
    assert_eq!(out.kind(), Kind::Float);
    assert_eq!(out.size(), [2, 3, 1, 2]);
    let got = values_f32(&out);
    for (k, &p) in pixels.iter().enumerate() {
        let c = (k / 2) % 3;
        let expected = (f32::from(p) / 255.0 - CIFAR_MEAN[c] as f32) / CIFAR_STD[c] as f32;
        assert_eq!(
            got[k].to_bits(),
            expected.to_bits(),
            "pixel {k}: {} vs {expected}",
            got[k]
        );
    }
    // Black red is -mean/std.
    assert!((got[0] - (-0.4914 / 0.2023) as f32).abs() < 1e-5);
    // One channel (MNIST).
    let grey = Tensor::from_slice(&[0u8, 255]).view([1, 1, 1, 2]);
    let v = values_f32(&normalize(&grey, &[0.1307], &[0.3081]));
    assert!((v[0] - (-0.1307f32 / 0.3081)).abs() < 1e-6);
    assert!((v[1] - (0.8693f32 / 0.3081)).abs() < 1e-6);
}

#[test]
#[should_panic(expected = "for 3 channels")]
fn normalize_needs_one_mean_per_channel() {
    let images = Tensor::zeros([1, 3, 2, 2], (Kind::Uint8, swalp_core::tch::Device::Cpu));
    let _ = normalize(&images, &[0.5], &[0.5]);
}

// ------------------------------------------------------------ HTTP server

/// A file server on 127.0.0.1 for one test: serves `root`'s files by path,
/// 404 otherwise, one connection at a time; logs request paths; stops when
/// dropped or after two minutes.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = root.to_path_buf();
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &root, &log),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Server {
            addr,
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(path.clone());
    let file = root.join(path.trim_start_matches('/'));
    let body = if path.contains("..") {
        None
    } else {
        fs::read(&file).ok()
    };
    let mut stream = &stream;
    let _ = match body {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        None => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
    };
    let _ = stream.flush();
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ------------------------------------------------------------ archives

/// A `.tar.gz` holding `folder/` with the given files.
fn tar_gz(folder: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut dir_header = tar::Header::new_gnu();
    dir_header.set_entry_type(tar::EntryType::Directory);
    dir_header.set_size(0);
    dir_header.set_mode(0o755);
    builder
        .append_data(&mut dir_header, format!("{folder}/"), std::io::empty())
        .unwrap();
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, format!("{folder}/{name}"), bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The CIFAR-10 test files (see [`write_cifar10`]) plus the archive's text
/// files, as a generated `cifar-10-binary.tar.gz`.
fn cifar10_archive() -> Vec<u8> {
    let staging = tmp();
    write_cifar10(staging.path());
    let mut files: Vec<(&str, Vec<u8>)> = CIFAR10_TRAIN
        .iter()
        .chain(&["test_batch.bin"])
        .map(|f| (*f, fs::read(staging.path().join(f)).unwrap()))
        .collect();
    files.push(("batches.meta.txt", b"airplane\nautomobile\n".to_vec()));
    tar_gz("cifar-10-batches-bin", &files)
}

fn cifar100_archive() -> Vec<u8> {
    let staging = tmp();
    write_cifar100(staging.path());
    let files: Vec<(&str, Vec<u8>)> = ["train.bin", "test.bin"]
        .iter()
        .map(|f| (*f, fs::read(staging.path().join(f)).unwrap()))
        .collect();
    tar_gz("cifar-100-binary", &files)
}

/// Puts `files` into `root/<name>/` of a mirror, with a `checksums.txt`
/// listing their digests if `checksums`.
fn publish(root: &Path, name: &str, files: &[(&str, Vec<u8>)], checksums: bool) {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let mut list = String::from("# md5sum\n");
    for (file, bytes) in files {
        fs::write(dir.join(file), bytes).unwrap();
        list.push_str(&format!("{}  {file}\n", md5_hex(bytes)));
    }
    if checksums {
        fs::write(dir.join("checksums.txt"), list).unwrap();
    }
}

fn source(server: &Server, name: &str, files: &[(&str, Vec<u8>)]) -> Source {
    Source {
        base_url: format!("{}/{name}/", server.url()),
        files: files
            .iter()
            .map(|(f, bytes)| RemoteFile {
                name: f.to_string(),
                md5: md5_hex(bytes),
            })
            .collect(),
    }
}

/// Every entry under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn idx_gz_files() -> Vec<(String, Vec<u8>)> {
    idx_files()
        .into_iter()
        .map(|(name, bytes)| (format!("{name}.gz"), gzip(&bytes)))
        .collect()
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect()
}

// ------------------------------------------------------------ download

#[test]
fn cifar10_download_extracts_a_verified_archive_and_then_skips_it() {
    let mirror = tmp();
    let files = [("cifar-10-binary.tar.gz", cifar10_archive())];
    publish(mirror.path(), "cifar10", &files, false);
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("data").join("cifar10");
    let mut progress = Vec::new();
    let report = download(
        DataName::Cifar10,
        &dir,
        &Origin::Custom(source(&server, "cifar10", &files)),
        &mut progress,
    )
    .unwrap();
    assert!(!report.already_present);
    assert_eq!(report.downloaded.len(), 1);
    assert_eq!(report.downloaded[0].bytes, files[0].1.len() as u64);
    let (train, test) = read_cifar10(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (15, 2));
    check_pattern(&train, 0);
    // Only the data folder remains: no archive, no temporary files.
    assert_eq!(
        tree(&dir),
        [
            "cifar-10-batches-bin",
            "cifar-10-batches-bin/batches.meta.txt",
            "cifar-10-batches-bin/data_batch_1.bin",
            "cifar-10-batches-bin/data_batch_2.bin",
            "cifar-10-batches-bin/data_batch_3.bin",
            "cifar-10-batches-bin/data_batch_4.bin",
            "cifar-10-batches-bin/data_batch_5.bin",
            "cifar-10-batches-bin/test_batch.bin",
        ]
    );
    let progress = String::from_utf8(progress).unwrap();
    assert!(progress.contains("md5"), "{progress}");
    assert_eq!(server.requests(), ["/cifar10/cifar-10-binary.tar.gz"]);

    // Again: already there, nothing fetched.
    let report = download(
        DataName::Cifar10,
        &dir,
        &Origin::Custom(source(&server, "cifar10", &files)),
        &mut Vec::new(),
    )
    .unwrap();
    assert!(report.already_present);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_unreadable_cifar_folder_is_replaced() {
    let mirror = tmp();
    let files = [("cifar-100-binary.tar.gz", cifar100_archive())];
    publish(mirror.path(), "cifar100", &files, false);
    let server = Server::start(mirror.path());
    let target = tmp();
    let broken = target.path().join("cifar-100-binary");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("train.bin"), b"junk").unwrap();
    download(
        DataName::Cifar100,
        target.path(),
        &Origin::Custom(source(&server, "cifar100", &files)),
        &mut Vec::new(),
    )
    .unwrap();
    let (train, _) = read_cifar100(target.path()).unwrap();
    assert_eq!(values_i64(&train.labels), [99, 92, 85]);
    assert_eq!(
        tree(target.path()),
        [
            "cifar-100-binary",
            "cifar-100-binary/test.bin",
            "cifar-100-binary/train.bin"
        ]
    );
}

#[test]
fn mnist_download_keeps_the_gz_files_and_fetches_only_what_is_missing() {
    let mirror = tmp();
    let files = idx_gz_files();
    let files = as_refs(&files);
    publish(mirror.path(), "mnist", &files, false);
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("mnist");
    let report = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(source(&server, "mnist", &files)),
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(report.downloaded.len(), 4);
    let names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(tree(&dir), sorted);
    for (name, bytes) in &files {
        assert_eq!(
            &fs::read(dir.join(name)).unwrap(),
            bytes,
            "{name} kept as is"
        );
    }
    let (train, test) = read_mnist(&dir).unwrap();
    check_idx(&train, &test);

    // One file lost and one corrupted: only those two are fetched again.
    fs::remove_file(dir.join(&names[3])).unwrap();
    fs::write(dir.join(&names[0]), b"corrupt").unwrap();
    let report = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(source(&server, "mnist", &files)),
        &mut Vec::new(),
    )
    .unwrap();
    assert!(!report.already_present);
    assert_eq!(report.kept, [names[1].clone(), names[2].clone()]);
    let fetched: Vec<&str> = report.downloaded.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(fetched, [names[0].as_str(), names[3].as_str()]);
    assert_eq!(server.requests().len(), 6);
    let (train, test) = read_mnist(&dir).unwrap();
    check_idx(&train, &test);
}

#[test]
fn a_checksum_mismatch_names_the_file_and_digests_and_leaves_nothing() {
    let mirror = tmp();
    let archive = cifar10_archive();
    publish(
        mirror.path(),
        "cifar10",
        &[("cifar-10-binary.tar.gz", archive.clone())],
        false,
    );
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("new").join("cifar10");
    let mut source = source(
        &server,
        "cifar10",
        &[("cifar-10-binary.tar.gz", archive.clone())],
    );
    let expected = "0123456789abcdef0123456789abcdef";
    source.files[0].md5 = expected.to_string();
    let err = download(
        DataName::Cifar10,
        &dir,
        &Origin::Custom(source),
        &mut Vec::new(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
    assert!(!message.contains('\n'));
    assert!(message.contains("cifar-10-binary.tar.gz"), "{message}");
    assert!(message.contains(expected), "{message}");
    assert!(message.contains(&md5_hex(&archive)), "{message}");
    // Nothing behind, not even the folders created for it.
    assert_eq!(tree(target.path()), Vec::<String>::new());

    // MNIST: the whole set or nothing; the two files verified before the
    // mismatching one are not kept either.
    let files = idx_gz_files();
    let files = as_refs(&files);
    publish(mirror.path(), "mnist", &files, false);
    let mut source = source_for_mnist(&server, &files);
    source.files[2].md5 = expected.to_string();
    let dir = target.path().join("mnist");
    let err = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(source),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("t10k-images-idx3-ubyte.gz"),
        "{err}"
    );
    assert_eq!(tree(target.path()), Vec::<String>::new());
}

fn source_for_mnist(server: &Server, files: &[(&str, Vec<u8>)]) -> Source {
    source(server, "mnist", files)
}

#[test]
fn an_archive_without_the_data_is_discarded() {
    let mirror = tmp();
    // Right digest, wrong contents: a CIFAR-10 batch of the wrong size.
    let archive = tar_gz(
        "cifar-10-batches-bin",
        &[("data_batch_1.bin", vec![0u8; 3000])],
    );
    let files = [("cifar-10-binary.tar.gz", archive)];
    publish(mirror.path(), "cifar10", &files, false);
    let server = Server::start(mirror.path());
    let target = tmp();
    let err = download(
        DataName::Cifar10,
        target.path(),
        &Origin::Custom(source(&server, "cifar10", &files)),
        &mut Vec::new(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::Archive { .. }), "{err:?}");
    assert!(message.contains("data_batch_1.bin"), "{message}");
    assert!(message.contains("wrong record size"), "{message}");
    assert_eq!(tree(target.path()), Vec::<String>::new());

    // Not a tar.gz at all.
    let files = [("cifar-10-binary.tar.gz", b"plain text".to_vec())];
    publish(mirror.path(), "cifar10", &files, false);
    let err = download(
        DataName::Cifar10,
        target.path(),
        &Origin::Custom(source(&server, "cifar10", &files)),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot extract"), "{err}");
    assert_eq!(tree(target.path()), Vec::<String>::new());
}

#[test]
fn http_errors_and_refused_connections_are_one_line_errors() {
    let mirror = tmp();
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("cifar10");
    let files = [("cifar-10-binary.tar.gz", Vec::new())];
    let err = download(
        DataName::Cifar10,
        &dir,
        &Origin::Custom(source(&server, "cifar10", &files)),
        &mut Vec::new(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DataError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert!(!message.contains('\n'));
    assert!(message.contains("HTTP 404 Not Found"), "{message}");
    assert!(
        message.contains(&format!("{}/cifar10/cifar-10-binary.tar.gz", server.url())),
        "{message}"
    );
    assert!(!dir.exists());

    let refused = Source {
        base_url: format!("{}/mnist/", closed_port_url()),
        files: vec![RemoteFile {
            name: "train-images-idx3-ubyte.gz".into(),
            md5: "0".repeat(32),
        }],
    };
    let err = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(refused.clone()),
        &mut Vec::new(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::Network { .. }), "{err:?}");
    assert!(!message.contains('\n'));
    assert!(message.contains(&refused.base_url), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!dir.exists());
}

#[test]
fn mirrors_checksums_must_agree_with_the_built_in_digests_unless_trusted() {
    let mirror = tmp();
    let files = idx_gz_files();
    let files = as_refs(&files);
    publish(mirror.path(), "fashion-mnist", &files, true);
    let server = Server::start(mirror.path());
    let url = format!("{}/", server.url());
    // The generated files' digests are not the published ones: refused,
    // naming the file, both digests and the list.
    let err = Source::mirror(DataName::FashionMnist, &url, false).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DataError::MirrorDigest { .. }), "{err:?}");
    assert!(err.is_usage());
    assert!(!message.contains('\n'));
    let built_in = &Source::canonical(DataName::FashionMnist).files[0];
    for needle in [
        built_in.name.as_str(),
        built_in.md5.as_str(),
        &md5_hex(&files[0].1),
        &format!("{}/fashion-mnist/checksums.txt", server.url()),
        "--trust-mirror-checksums",
    ] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    // Trusted: the mirror's digests, each replacement reported.
    let (source, overrides) = Source::mirror(DataName::FashionMnist, &url, true).unwrap();
    assert_eq!(source.base_url, format!("{}/fashion-mnist/", server.url()));
    assert_eq!(overrides.len(), 4);
    for ((file, (name, bytes)), o) in source.files.iter().zip(&files).zip(&overrides) {
        assert_eq!(&file.name, name);
        assert_eq!(file.md5, md5_hex(bytes));
        assert_eq!((o.file.as_str(), &o.mirror), (*name, &file.md5));
    }
    assert_eq!(overrides[0].built_in, built_in.md5);
    // A list that agrees (upper case hex is the same digest): accepted
    // without trust, nothing replaced.
    let canonical = Source::canonical(DataName::Mnist);
    let list: String = canonical
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.md5.to_uppercase(), f.name))
        .collect();
    fs::create_dir_all(mirror.path().join("mnist")).unwrap();
    fs::write(mirror.path().join("mnist/checksums.txt"), list).unwrap();
    let (source, overrides) = Source::mirror(DataName::Mnist, &server.url(), false).unwrap();
    assert_eq!(source.files, canonical.files);
    assert!(overrides.is_empty());
    // No checksums.txt (404): the published digests.
    let (source, overrides) = Source::mirror(DataName::Cifar100, &server.url(), false).unwrap();
    assert_eq!(source.files, Source::canonical(DataName::Cifar100).files);
    assert!(overrides.is_empty());
    assert_eq!(
        Source::canonical(DataName::Mnist).files[0].md5,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    );
    assert_eq!(
        Source::canonical(DataName::Cifar10).files[0].md5,
        "c32a1d4ab5d03f1284b67883e8d87530"
    );
    // A malformed list is an error naming it.
    fs::create_dir_all(mirror.path().join("cifar10")).unwrap();
    fs::write(
        mirror.path().join("cifar10/checksums.txt"),
        "xyz cifar-10-binary.tar.gz\n",
    )
    .unwrap();
    let err = Source::mirror(DataName::Cifar10, &server.url(), true).unwrap_err();
    assert!(err.to_string().contains("checksums.txt"), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn mirror_urls_are_checked() {
    for ok in [
        "http://127.0.0.1:8080",
        "https://example.com/data/",
        "HTTP://mirror.example.org:65535/a/b",
        "http://[::1]:8000/x",
        "  http://localhost  ",
    ] {
        assert_eq!(check_mirror_url(ok), Ok(ok.trim().to_string()), "{ok}");
    }
    for (bad, reason) in [
        ("http://127.0.0.1:99999", "port 99999 is out of range"),
        ("http://127.0.0.1:0", "out of range"),
        ("http://host:", "not a number"),
        ("http://host:8x", "not a number"),
        ("127.0.0.1:8080/data", "no scheme"),
        ("example.com", "no scheme"),
        ("ftp://example.com/x", "unsupported scheme \"ftp\""),
        ("file:///tmp/mirror", "unsupported scheme \"file\""),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://exa mple.com", "not allowed"),
        ("http://example.com/?q=1", "not allowed"),
        ("http://user:pw@example.com", "user names"),
        ("http://[::1", "closing"),
        ("", "empty"),
    ] {
        let err = check_mirror_url(bad).unwrap_err();
        assert!(err.contains(reason), "{bad:?}: {err}");
    }
}

/// A server that answers `checksums.txt` with 404 and any other request
/// with the start of a long body, then stalls: a download in progress.
fn stalling_server() -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut held = Vec::new();
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let mut s = &stream;
            if request.contains("checksums.txt") {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            } else {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
                );
                let _ = s.write_all(&vec![7u8; 3 << 20]);
                let _ = s.flush();
                held.push(stream);
            }
        }
    });
    (url, stop)
}

/// The staging folders in `dir`.
fn staging_folders(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|p| p.starts_with('.') && !p.contains('/') && p.contains(".swalp-download-"))
        .collect()
}

#[test]
fn a_failing_fourth_file_leaves_the_directory_as_it_was() {
    let mirror = tmp();
    let files = idx_gz_files();
    let files = as_refs(&files);
    // The last file is missing on the server: 404 after three verified.
    publish(mirror.path(), "mnist", &files[..3], false);
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("mnist");
    // The user's files: one of their own, one corrupt file of the set
    // (to be replaced), both to stay exactly as they are.
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    fs::write(dir.join(files[1].0), b"corrupt").unwrap();
    let err = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(source(&server, "mnist", &files)),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DataError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 4, "{:?}", server.requests());
    assert_eq!(
        tree(&dir),
        ["notes.txt", "train-labels-idx1-ubyte.gz"],
        "no file of the set, no staging folder"
    );
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(dir.join(files[1].0)).unwrap(), b"corrupt");
    // The same through the command: exit 2, and a folder it created is
    // removed again.
    let new_dir = target.path().join("new");
    let out = swalp(
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            new_dir.to_str().unwrap(),
            "--mirror",
            &server.url(),
        ],
        &[],
    );
    assert_usage_error(&out);
    assert!(!new_dir.exists());
}

#[test]
fn a_killed_downloads_staging_folder_is_removed_by_the_next_download() {
    let (stall_url, stop) = stalling_server();
    let target = tmp();
    let dir = target.path().join("mnist");
    let mut child = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(["data", "download", "mnist", "--dir", dir.to_str().unwrap()])
        .args(["--mirror", &stall_url])
        .env_remove("SWALP_DATA_MIRROR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it is writing its first file, then kill it (SIGKILL).
    let deadline = Instant::now() + Duration::from_secs(60);
    let staged = loop {
        let staged: Vec<String> = tree(&dir)
            .into_iter()
            .filter(|p| p.contains(".swalp-download-") && p.ends_with(".gz"))
            .collect();
        let size = staged
            .first()
            .and_then(|p| fs::metadata(dir.join(p)).ok())
            .map_or(0, |m| m.len());
        if size > 0 {
            break staged;
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let debris = staging_folders(&dir);
    assert_eq!(debris.len(), 1, "{staged:?}");
    assert!(
        debris[0].starts_with(".mnist.swalp-download-"),
        "{debris:?}"
    );

    // A download still running (its folder locked by this process) is
    // left alone.
    let live = dir.join(".cifar10.swalp-download-1-0");
    fs::create_dir(&live).unwrap();
    let lock = fs::File::open(&live).unwrap();
    assert!(swalp_cli::atomic::try_lock_exclusive(&lock).unwrap());

    let mirror = tmp();
    let files = idx_gz_files();
    let files = as_refs(&files);
    publish(mirror.path(), "mnist", &files, false);
    let server = Server::start(mirror.path());
    let mut progress = Vec::new();
    let report = download(
        DataName::Mnist,
        &dir,
        &Origin::Custom(source(&server, "mnist", &files)),
        &mut progress,
    )
    .unwrap();
    assert_eq!(report.removed_stale, [dir.join(&debris[0])]);
    let progress = String::from_utf8(progress).unwrap();
    assert!(progress.contains("interrupted download"), "{progress}");
    assert_eq!(staging_folders(&dir), [".cifar10.swalp-download-1-0"]);
    let (train, test) = read_mnist(&dir).unwrap();
    check_idx(&train, &test);
    drop(lock);
}

/// A tmpfs of `kib` KiB mounted on a new folder, unmounted on drop; `None`
/// where it cannot be mounted (not root, no mount command).
struct SmallDisk(TempDir);

impl SmallDisk {
    fn mount(kib: u32) -> Result<SmallDisk, String> {
        let dir = tmp();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_is_a_one_line_error_with_exit_2_and_leaves_nothing() {
    let disk = match SmallDisk::mount(256) {
        Ok(disk) => disk,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    // A first file larger than the disk (incompressible bytes).
    let mut files = idx_gz_files();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    files[0].1 = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let files = as_refs(&files);
    let mirror = tmp();
    publish(mirror.path(), "mnist", &files, true);
    let server = Server::start(mirror.path());
    let dir = disk.0.path().join("mnist");
    let out = swalp(
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            dir.to_str().unwrap(),
            "--mirror",
            &server.url(),
            "--trust-mirror-checksums",
        ],
        &[],
    );
    let err = assert_usage_error(&out);
    assert!(err.starts_with("error: cannot write "), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    for debug in ["internal error", "Os {", "Kind(", "IoError"] {
        assert!(!err.contains(debug), "{debug:?} in: {err}");
    }
    assert_eq!(tree(disk.0.path()), Vec::<String>::new());
}

// ------------------------------------------------------------ CLI

fn swalp(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swalp-cli"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SWALP_DATA_MIRROR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the swalp-cli binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks a failed run: exit 2 and one `error:` line.
fn assert_usage_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn cli_downloads_from_a_mirror_with_checksums() {
    let mirror = tmp();
    publish(
        mirror.path(),
        "cifar100",
        &[("cifar-100-binary.tar.gz", cifar100_archive())],
        true,
    );
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("c100");
    let dir_arg = dir.to_str().unwrap();
    let out = swalp(
        &[
            "data",
            "download",
            "cifar100",
            "--dir",
            dir_arg,
            "--mirror",
            &server.url(),
            "--trust-mirror-checksums",
        ],
        &[],
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CIFAR-100 is ready in"), "{stdout}");
    // The generated archive is not the published one: one warning line.
    let warning = stderr(&out);
    assert_eq!(warning.lines().count(), 1, "{warning}");
    assert!(
        warning.starts_with("warning: --trust-mirror-checksums:"),
        "{warning}"
    );
    assert!(warning.contains("cifar-100-binary.tar.gz"), "{warning}");
    assert!(
        warning.contains("03b5dce01913d631647c71ecec9e9cb8"),
        "{warning}"
    );
    let (train, test) = read_cifar100(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (3, 2));
    // A second run finds it and fetches nothing.
    let before = server.requests().len();
    let out = swalp(
        &["data", "download", "cifar100", "--dir", dir_arg],
        &[("SWALP_DATA_MIRROR", &server.url())],
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already"));
    assert_eq!(server.requests().len(), before);

    // Fashion-MNIST through the environment variable.
    let files = idx_gz_files();
    publish(mirror.path(), "fashion-mnist", &as_refs(&files), true);
    let dir = target.path().join("fm");
    let out = swalp(
        &[
            "data",
            "download",
            "fashion-mnist",
            "--dir",
            dir.to_str().unwrap(),
            "--trust-mirror-checksums",
        ],
        &[("SWALP_DATA_MIRROR", &server.url())],
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let (train, test) = read_fashion_mnist(&dir).unwrap();
    check_idx(&train, &test);
}

#[test]
fn cli_download_failures_exit_2_with_one_line() {
    let mirror = tmp();
    let server = Server::start(mirror.path());
    let target = tmp();
    let dir = target.path().join("d");
    let dir_arg = dir.to_str().unwrap();
    // 404 for the data (and for checksums.txt, which is optional).
    let out = swalp(
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            dir_arg,
            "--mirror",
            &server.url(),
        ],
        &[],
    );
    let err = assert_usage_error(&out);
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("/mnist/train-images-idx3-ubyte.gz"), "{err}");
    assert!(!dir.exists());
    // Nobody listening.
    let out = swalp(
        &["data", "download", "cifar10", "--dir", dir_arg],
        &[("SWALP_DATA_MIRROR", &closed_port_url())],
    );
    let err = assert_usage_error(&out);
    assert!(err.contains("cannot download"), "{err}");
    assert!(!dir.exists());
    // A checksum mismatch through the mirror's list.
    let files = [("cifar-10-binary.tar.gz", cifar10_archive())];
    publish(mirror.path(), "cifar10", &files, false);
    fs::write(
        mirror.path().join("cifar10/checksums.txt"),
        format!("{}  cifar-10-binary.tar.gz\n", "f".repeat(32)),
    )
    .unwrap();
    let out = swalp(
        &[
            "data",
            "download",
            "cifar10",
            "--dir",
            dir_arg,
            "--mirror",
            &server.url(),
        ],
        &[],
    );
    // It disagrees with the built-in digest: refused before downloading.
    let err = assert_usage_error(&out);
    for needle in [
        "cifar-10-binary.tar.gz",
        &"f".repeat(32),
        "c32a1d4ab5d03f1284b67883e8d87530",
        &format!("{}/cifar10/checksums.txt", server.url()),
        "--trust-mirror-checksums",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert!(!dir.exists());
    assert!(!server
        .requests()
        .contains(&"/cifar10/cifar-10-binary.tar.gz".to_string()));
    // Trusted, the archive does not match the mirror's digest either.
    let out = swalp(
        &[
            "data",
            "download",
            "cifar10",
            "--dir",
            dir_arg,
            "--mirror",
            &server.url(),
            "--trust-mirror-checksums",
        ],
        &[],
    );
    let err = assert_usage_error(&out);
    assert!(err.contains("md5 mismatch"), "{err}");
    assert!(!dir.exists());
    // The flag without a mirror.
    let out = swalp(
        &[
            "data",
            "download",
            "cifar10",
            "--dir",
            dir_arg,
            "--trust-mirror-checksums",
        ],
        &[],
    );
    let err = assert_usage_error(&out);
    assert!(err.contains("needs a mirror"), "{err}");
    // Unknown data set: clap's usage error.
    let out = swalp(&["data", "download", "imagenet"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_refuses_invalid_mirror_urls_with_one_line() {
    let target = tmp();
    let dir = target.path().join("d");
    let dir_arg = dir.to_str().unwrap();
    for (url, reason) in [
        ("http://127.0.0.1:99999", "port 99999 is out of range"),
        ("127.0.0.1:8080", "no scheme"),
        ("ftp://example.com/data", "unsupported scheme"),
        ("file:///tmp/mirror", "unsupported scheme"),
    ] {
        let out = swalp(
            &[
                "data", "download", "mnist", "--dir", dir_arg, "--mirror", url,
            ],
            &[],
        );
        let err = assert_usage_error(&out);
        for needle in [url, reason, "--mirror", "http://HOST[:PORT][/PATH]"] {
            assert!(err.contains(needle), "{needle:?} missing: {err}");
        }
        // The same from the environment variable, which it names.
        let out = swalp(
            &["data", "download", "mnist", "--dir", dir_arg],
            &[("SWALP_DATA_MIRROR", url)],
        );
        let err = assert_usage_error(&out);
        assert!(err.contains("SWALP_DATA_MIRROR"), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(!dir.exists());
    }
}

#[test]
fn data_names_round_trip() {
    for name in DataName::ALL {
        assert_eq!(DataName::from_name(name.name()), Some(name));
        assert_eq!(name.default_dir(), PathBuf::from("data").join(name.name()));
        assert_eq!(name.mean().len() as i64, name.channels());
    }
    assert_eq!(DataName::from_name("cifar-10"), None);
}

#[test]
fn the_data_subcommand_is_a_consistent_clap_definition() {
    use clap::CommandFactory;
    swalp_cli::Cli::command().debug_assert();
}
