//! [`DataError`]: everything reading or downloading a real data set can fail
//! with, as one line naming the file (or URL), what is wrong with it and how
//! to fix it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::real::DataName;

/// A data set that cannot be read or downloaded.
#[derive(Debug)]
pub enum DataError {
    /// No data set has this `data.name`.
    UnknownName(String),
    /// A data file that is missing, unreadable or malformed. The message
    /// ends with the command that (re)downloads the data set.
    File {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
        /// The data set, for the fix.
        name: DataName,
        /// The directory the reader was given, for the fix.
        dir: PathBuf,
    },
    /// The server answered a download with an HTTP error status.
    Http {
        /// The URL requested.
        url: String,
        /// The status code, e.g. 404.
        status: u16,
    },
    /// A download failed before or while receiving the file: no
    /// connection, DNS, TLS, timeout, a dropped connection.
    Network {
        /// The URL requested.
        url: String,
        /// Why, in one line.
        reason: String,
    },
    /// A downloaded file whose md5 digest is not the published one. It was
    /// discarded.
    Checksum {
        /// The file name, e.g. `cifar-10-binary.tar.gz`.
        file: String,
        /// Where it came from.
        url: String,
        /// The expected digest (lowercase hex).
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A downloaded archive that cannot be extracted, or whose contents are
    /// not the data set. It was discarded.
    Archive {
        /// The file name.
        file: String,
        /// Where it came from.
        url: String,
        /// What is wrong, in one line.
        reason: String,
    },
    /// A mirror's `checksums.txt` that cannot be used.
    Checksums {
        /// Its URL.
        url: String,
        /// What is wrong, in one line.
        reason: String,
    },
    /// A mirror URL that is not `http(s)://HOST[:PORT][/PATH]`.
    MirrorUrl {
        /// The value as given.
        value: String,
        /// Where it came from: `--mirror` or the environment variable.
        given_by: &'static str,
        /// What is wrong with it, in one line.
        reason: String,
    },
    /// A mirror's `checksums.txt` that gives a file another digest than
    /// swalp's built-in one (and the mirror's digests are not trusted).
    MirrorDigest {
        /// The file name.
        file: String,
        /// The URL of the mirror's `checksums.txt`.
        checksums_url: String,
        /// swalp's built-in digest.
        built_in: String,
        /// The mirror's digest.
        mirror: String,
    },
    /// Creating or writing a file or directory of the data set failed.
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// What is wrong with a data file.
#[derive(Debug)]
pub enum FileProblem {
    /// The file does not exist (for IDX files: neither raw nor `.gz`).
    Missing,
    /// The file exists but cannot be read.
    Unreadable(io::Error),
    /// The file (after decompression, for `.gz` files) is shorter than its
    /// format or header requires.
    Truncated {
        /// Bytes required.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// The file is longer than its header says.
    TrailingData {
        /// Bytes the header accounts for.
        expected: u64,
        /// Bytes found.
        actual: u64,
    },
    /// A CIFAR file whose length is not a positive multiple of the record
    /// size; nothing of it is read.
    RecordSize {
        /// The file length.
        len: u64,
        /// The record size: 3073 (CIFAR-10) or 3074 (CIFAR-100).
        record: u64,
    },
    /// An IDX file starting with the wrong magic number.
    BadMagic {
        /// The magic found.
        found: u32,
        /// The magic required: 0x00000803 (images) or 0x00000801 (labels).
        expected: u32,
    },
    /// IDX images with no rows or no columns.
    BadDims {
        /// Rows per image in the header.
        rows: u32,
        /// Columns per image in the header.
        cols: u32,
    },
    /// Test images of another size than the training images.
    SizeMismatch {
        /// Rows and columns of these images.
        size: (u32, u32),
        /// Rows and columns of the training images.
        train: (u32, u32),
    },
    /// An IDX labels file whose count differs from its images file's.
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Images in it.
        n_images: u64,
        /// Labels in this file.
        n_labels: u64,
    },
    /// A label outside `0..classes`.
    LabelOutOfRange {
        /// The example (0-based, within the file).
        index: u64,
        /// Its label.
        label: u8,
        /// The number of classes.
        classes: u32,
    },
    /// A `.gz` file that does not decompress.
    Gzip(String),
}

impl DataError {
    /// A [`DataError::File`].
    pub(crate) fn file(path: &Path, problem: FileProblem, name: DataName, dir: &Path) -> Self {
        DataError::File {
            path: path.to_path_buf(),
            problem,
            name,
            dir: dir.to_path_buf(),
        }
    }

    /// A [`DataError::Write`] (downloads write files).
    #[cfg(feature = "download")]
    pub(crate) fn write(path: &Path, source: io::Error) -> Self {
        DataError::Write {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the user can fix the problem (bad or missing files, the
    /// network, a wrong mirror, and writes that fail for a reason the user
    /// can fix: permissions, a read-only file system, a full disk or quota,
    /// a file in the way; see [`crate::atomic::io_error_is_users`]): exit
    /// status 2. Only other write failures (an I/O error) are not.
    pub fn is_usage(&self) -> bool {
        match self {
            DataError::Write { source, .. } => crate::atomic::io_error_is_users(source),
            _ => true,
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Missing => f.write_str("no such file"),
            FileProblem::Unreadable(e) => write!(f, "cannot read: {}", first_line(&e.to_string())),
            FileProblem::Truncated { expected, actual } => {
                write!(f, "truncated: expected {expected} bytes, got {actual}")
            }
            FileProblem::TrailingData { expected, actual } => write!(
                f,
                "wrong length: the header accounts for {expected} bytes, the file has {actual}"
            ),
            FileProblem::RecordSize { len, record } => write!(
                f,
                "wrong record size: file length {len} is not a positive multiple of the \
                 {record}-byte record ({} label byte{} + 3072 pixel bytes)",
                record - 3072,
                if *record == 3073 { "" } else { "s" }
            ),
            FileProblem::BadMagic { found, expected } => write!(
                f,
                "bad magic 0x{found:08x}, expected 0x{expected:08x} (IDX {})",
                if *expected == super::idx::IMAGES_MAGIC {
                    "images"
                } else {
                    "labels"
                }
            ),
            FileProblem::BadDims { rows, cols } => write!(
                f,
                "images are {rows}x{cols}; rows and columns must be at least 1"
            ),
            FileProblem::SizeMismatch { size, train } => write!(
                f,
                "images are {}x{}, the training images {}x{}; both splits must share one size",
                size.0, size.1, train.0, train.1
            ),
            FileProblem::CountMismatch {
                images,
                n_images,
                n_labels,
            } => write!(
                f,
                "count mismatch: {n_labels} labels for {n_images} images in {}",
                images.display()
            ),
            FileProblem::LabelOutOfRange {
                index,
                label,
                classes,
            } => write!(
                f,
                "label out of range: example {index} has label {label}, expected 0..={}",
                classes - 1
            ),
            FileProblem::Gzip(reason) => {
                write!(f, "corrupt or truncated gzip data: {}", first_line(reason))
            }
        }
    }
}

/// The reason phrase of an HTTP status ("Not Found"), where known.
#[cfg(feature = "download")]
fn status_reason(status: u16) -> Option<&'static str> {
    ureq::http::StatusCode::from_u16(status)
        .ok()?
        .canonical_reason()
}

/// Without downloads no HTTP error arises; the message just has no phrase.
#[cfg(not(feature = "download"))]
fn status_reason(_: u16) -> Option<&'static str> {
    None
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::UnknownName(name) => write!(
                f,
                "invalid value {name:?} for `data.name`: expected one of {}",
                super::NAMES.join(", ")
            ),
            // Not a data problem: downloading again would not help.
            DataError::File {
                path,
                problem: problem @ FileProblem::Unreadable(_),
                name,
                ..
            } => write!(f, "{} file {}: {problem}", name.title(), path.display()),
            DataError::File {
                path,
                problem,
                name,
                dir,
            } => write!(
                f,
                "{} file {}: {problem}; run `{}` to (re)download it",
                name.title(),
                path.display(),
                name.download_command(dir)
            ),
            DataError::Http { url, status } => {
                let reason = status_reason(*status)
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "download of {url} failed: HTTP {status}{reason}; \
                     check the URL (or the mirror given by --mirror / {})",
                    super::real::MIRROR_ENV
                )
            }
            DataError::Network { url, reason } => write!(
                f,
                "cannot download {url}: {}; check the network connection \
                 (and the mirror, if --mirror or {} names one)",
                first_line(reason),
                super::real::MIRROR_ENV
            ),
            DataError::Checksum {
                file,
                url,
                expected,
                actual,
            } => write!(
                f,
                "{file} from {url}: md5 mismatch: expected {expected}, got {actual}; \
                 the download was discarded (retry; a persistent mismatch means the \
                 server sends a different file)"
            ),
            DataError::Archive { file, url, reason } => write!(
                f,
                "{file} from {url}: {}; the download was discarded",
                first_line(reason)
            ),
            DataError::Checksums { url, reason } => {
                write!(f, "mirror checksums {url}: {}", first_line(reason))
            }
            DataError::MirrorUrl {
                value,
                given_by,
                reason,
            } => write!(
                f,
                "invalid mirror URL {value:?} ({given_by}): {}; expected \
                 http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH], PORT in 1..=65535",
                first_line(reason)
            ),
            DataError::MirrorDigest {
                file,
                checksums_url,
                built_in,
                mirror,
            } => write!(
                f,
                "{file}: the mirror's {checksums_url} lists md5 {mirror}, but swalp's \
                 built-in digest is {built_in}; nothing was downloaded (use another mirror, \
                 or pass --trust-mirror-checksums to verify with the mirror's digests)"
            ),
            DataError::Write { path, source } => write!(
                f,
                "cannot write {}: {}",
                path.display(),
                crate::atomic::io_error_reason(source)
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::File {
                problem: FileProblem::Unreadable(e),
                ..
            } => Some(e),
            DataError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The first line of a possibly multi-line message, trimmed.
pub(crate) fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("").trim()
}
