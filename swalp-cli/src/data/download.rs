//! Downloading the real data sets: `swalp-cli data download NAME [--dir D]`.
//!
//! Each file is fetched over HTTP(S) into a hidden temporary file in the
//! target directory while its md5 digest is computed, checked against the
//! published digest, and only then renamed into place (MNIST, Fashion-MNIST:
//! the `.gz` files are kept as they are, the readers read them) or extracted
//! (CIFAR: the `.tar.gz` is unpacked into a temporary folder, checked with
//! the reader, and its `cifar-10-batches-bin/` or `cifar-100-binary/` folder
//! renamed into place; the archive is not kept). A failed, interrupted or
//! mismatched download leaves nothing behind. A data set the reader already
//! accepts is not downloaded again, and with MNIST-style sets each file
//! already present with the right digest is kept.
//!
//! Sources: CIFAR from <https://www.cs.toronto.edu/~kriz/>, MNIST from the
//! torchvision mirror <https://ossci-datasets.s3.amazonaws.com/mnist/>,
//! Fashion-MNIST from
//! <http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/>, with the
//! md5 digests the CIFAR page and torchvision publish ([`Source::canonical`]).
//!
//! Mirrors: `--mirror URL` or the environment variable
//! [`SWALP_DATA_MIRROR`](MIRROR_ENV) replaces the hosts by `URL/<name>/`,
//! where `<name>` is `cifar10`, `cifar100`, `mnist` or `fashion-mnist` and
//! the file names are unchanged (e.g. `URL/mnist/train-images-idx3-ubyte.gz`).
//! If the mirror serves `URL/<name>/checksums.txt` (md5sum format: a hex
//! digest, white space, a file name per line; `#` comments), its digests
//! replace the built-in ones for the files it lists; if it answers 404 the
//! built-in digests apply ([`Source::mirror`]).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flate2::read::GzDecoder;

use super::cifar::{CIFAR100_FOLDER, CIFAR10_FOLDER};
use super::error::DataError;
use super::mnist;
use super::real::DataName;
use crate::atomic::TempFile;

/// The environment variable naming a mirror, like `--mirror`.
pub use super::real::MIRROR_ENV;

/// The name of a mirror's optional digest list, in each data set's folder.
pub const CHECKSUMS_FILE: &str = "checksums.txt";

const CIFAR_BASE: &str = "https://www.cs.toronto.edu/~kriz/";
const MNIST_BASE: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
const FASHION_MNIST_BASE: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// Digests of the MNIST `.gz` files, in [`mnist::FILES`] order
/// (torchvision's `MNIST.resources`).
const MNIST_MD5: [&str; 4] = [
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
];

/// Digests of the Fashion-MNIST `.gz` files (torchvision's
/// `FashionMNIST.resources`).
const FASHION_MNIST_MD5: [&str; 4] = [
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
];

/// A file to download and its expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file name, on the server and on disk.
    pub name: String,
    /// Its md5 digest, lowercase hex.
    pub md5: String,
}

/// Where a data set's files come from and what they must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// URL the file names are appended to, ending in `/`.
    pub base_url: String,
    /// The files: one `.tar.gz` for CIFAR, four `.gz` for MNIST-style sets.
    pub files: Vec<RemoteFile>,
}

impl Source {
    /// The data set's official host and published digests.
    pub fn canonical(name: DataName) -> Source {
        let file = |name: &str, md5: &str| RemoteFile {
            name: name.to_string(),
            md5: md5.to_string(),
        };
        let idx = |md5: [&str; 4]| -> Vec<RemoteFile> {
            mnist::FILES
                .iter()
                .zip(md5)
                .map(|(f, m)| file(&format!("{f}.gz"), m))
                .collect()
        };
        let (base, files) = match name {
            DataName::Cifar10 => (
                CIFAR_BASE,
                vec![file(
                    "cifar-10-binary.tar.gz",
                    "c32a1d4ab5d03f1284b67883e8d87530",
                )],
            ),
            DataName::Cifar100 => (
                CIFAR_BASE,
                vec![file(
                    "cifar-100-binary.tar.gz",
                    "03b5dce01913d631647c71ecec9e9cb8",
                )],
            ),
            DataName::Mnist => (MNIST_BASE, idx(MNIST_MD5)),
            DataName::FashionMnist => (FASHION_MNIST_BASE, idx(FASHION_MNIST_MD5)),
        };
        Source {
            base_url: base.to_string(),
            files,
        }
    }

    /// The data set on a mirror: files from `mirror/<name>/`, digests from
    /// `mirror/<name>/checksums.txt` where it lists them, else the built-in
    /// ones. Fetches `checksums.txt` (a 404 means there is none).
    pub fn mirror(name: DataName, mirror: &str) -> Result<Source, DataError> {
        let mut source = Source::canonical(name);
        source.base_url = format!("{}/{}/", mirror.trim_end_matches('/'), name.name());
        let url = format!("{}{CHECKSUMS_FILE}", source.base_url);
        let Some(text) = fetch_small(&agent(), &url)? else {
            return Ok(source);
        };
        let digests = parse_checksums(&text).map_err(|reason| DataError::Checksums {
            url: url.clone(),
            reason,
        })?;
        for file in &mut source.files {
            if let Some(md5) = digests.get(&file.name) {
                file.md5.clone_from(md5);
            }
        }
        Ok(source)
    }

    /// The URL of `file`.
    pub fn url(&self, file: &RemoteFile) -> String {
        format!("{}{}", self.base_url, file.name)
    }
}

/// Where [`download`] gets a data set from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The official host and digests: [`Source::canonical`].
    Canonical,
    /// A mirror's base URL: [`Source::mirror`].
    Mirror(String),
    /// Exactly these files and digests.
    Custom(Source),
}

impl Origin {
    /// `--mirror` if given, else the [`MIRROR_ENV`] environment variable if
    /// set and not blank, else the official hosts.
    pub fn from_flag_or_env(mirror: Option<&str>) -> Origin {
        let env = std::env::var(MIRROR_ENV).ok();
        match mirror.or(env.as_deref()).map(str::trim) {
            Some(m) if !m.is_empty() => Origin::Mirror(m.to_string()),
            _ => Origin::Canonical,
        }
    }

    /// The files and digests (fetches a mirror's `checksums.txt`).
    pub fn source(&self, name: DataName) -> Result<Source, DataError> {
        match self {
            Origin::Canonical => Ok(Source::canonical(name)),
            Origin::Mirror(url) => Source::mirror(name, url),
            Origin::Custom(source) => Ok(source.clone()),
        }
    }
}

/// Parses md5sum output: `<32 hex digits> <white space> [*]<file name>` per
/// line; blank lines and `#` comments are skipped.
fn parse_checksums(text: &str) -> Result<HashMap<String, String>, String> {
    let mut digests = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(md5), Some(file), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!(
                "line {}: expected `<md5> <file name>`, got {line:?}",
                i + 1
            ));
        };
        if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "line {}: {md5:?} is not an md5 digest (32 hex digits)",
                i + 1
            ));
        }
        let file = file.strip_prefix('*').unwrap_or(file);
        digests.insert(file.to_string(), md5.to_ascii_lowercase());
    }
    Ok(digests)
}

/// What [`download`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadReport {
    /// The data set.
    pub name: DataName,
    /// The directory it is in.
    pub dir: PathBuf,
    /// Whether the directory already held a readable copy, so that nothing
    /// was fetched.
    pub already_present: bool,
    /// Files fetched and verified.
    pub downloaded: Vec<Downloaded>,
    /// Files kept because they were present with the right digest.
    pub kept: Vec<String>,
}

/// One file fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// The file name.
    pub file: String,
    /// Where it came from.
    pub url: String,
    /// Its length.
    pub bytes: u64,
}

/// Downloads data set `name` from `origin` into `dir` (created if needed),
/// verifying every file's md5 digest, unless `dir` already holds a copy the
/// reader accepts (then nothing is fetched, not even a mirror's
/// `checksums.txt`). Progress goes to `progress`, one line per step (write
/// errors there are ignored). On success the data set is readable from `dir`
/// with [`super::read`]; on error nothing partial is left in `dir` (files
/// already verified are kept).
pub fn download(
    name: DataName,
    dir: &Path,
    origin: &Origin,
    progress: &mut dyn Write,
) -> Result<DownloadReport, DataError> {
    let mut report = DownloadReport {
        name,
        dir: dir.to_path_buf(),
        already_present: false,
        downloaded: Vec::new(),
        kept: Vec::new(),
    };
    if super::read(name, dir).is_ok() {
        report.already_present = true;
        let _ = writeln!(
            progress,
            "{} is already in {}; nothing to download",
            name.title(),
            dir.display()
        );
        return Ok(report);
    }
    let source = origin.source(name)?;
    let created = create_dirs(dir)?;
    let result = fetch_into(name, dir, &source, &mut report, progress);
    if result.is_err() {
        // Leave no empty folders behind either (only those created here,
        // and only if nothing else put files in them meanwhile).
        for d in created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
    result.map(|()| report)
}

/// Creates `dir` and its missing ancestors; returns those created,
/// outermost first.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|e| DataError::write(dir, e))?;
    Ok(missing.into_iter().rev().collect())
}

/// [`download`] once `dir` exists.
fn fetch_into(
    name: DataName,
    dir: &Path,
    source: &Source,
    report: &mut DownloadReport,
    progress: &mut dyn Write,
) -> Result<(), DataError> {
    let agent = agent();
    match name {
        DataName::Cifar10 | DataName::Cifar100 => {
            for file in &source.files {
                let target = dir.join(&file.name);
                let (archive, done) = fetch_verified(&agent, source, file, &target, progress)?;
                extract_cifar(name, archive.path(), dir, &done, progress)?;
                report.downloaded.push(done);
            }
        }
        DataName::Mnist | DataName::FashionMnist => {
            for file in &source.files {
                let target = dir.join(&file.name);
                if target.is_file() {
                    if md5_of_file(&target).as_deref() == Some(file.md5.as_str()) {
                        let _ = writeln!(progress, "{}: present, md5 ok", target.display());
                        report.kept.push(file.name.clone());
                        continue;
                    }
                    let _ = writeln!(
                        progress,
                        "{}: present but its md5 is not {}; downloading it again",
                        target.display(),
                        file.md5
                    );
                }
                let (tmp, done) = fetch_verified(&agent, source, file, &target, progress)?;
                tmp.persist().map_err(|e| DataError::write(&target, e))?;
                report.downloaded.push(done);
            }
        }
    }
    // Loose files in `dir` shadow the extracted folder; report them.
    super::read(name, dir)?;
    let _ = writeln!(progress, "{} is ready in {}", name.title(), dir.display());
    Ok(())
}

/// The HTTP client: status codes are returned, not errors; patient but
/// bounded timeouts; no content decoding (files arrive byte for byte).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(format!("swalp-cli/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn network_error(url: &str, err: ureq::Error) -> DataError {
    let reason = match err {
        ureq::Error::Io(e) => e.to_string(),
        other => other.to_string(),
    };
    DataError::Network {
        url: url.to_string(),
        reason,
    }
}

/// GETs `url`: the response if the status is 200, `None` for a 404 when
/// `missing_ok`, else an error.
fn get(
    agent: &ureq::Agent,
    url: &str,
    missing_ok: bool,
) -> Result<Option<ureq::http::Response<ureq::Body>>, DataError> {
    let response = agent.get(url).call().map_err(|e| network_error(url, e))?;
    match response.status().as_u16() {
        200 => Ok(Some(response)),
        404 if missing_ok => Ok(None),
        status => Err(DataError::Http {
            url: url.to_string(),
            status,
        }),
    }
}

/// GETs `url`, requiring status 200.
fn get_required(
    agent: &ureq::Agent,
    url: &str,
) -> Result<ureq::http::Response<ureq::Body>, DataError> {
    get(agent, url, false)?.ok_or_else(|| DataError::Http {
        url: url.to_string(),
        status: 404,
    })
}

/// A small text file (at most 1 MiB), or `None` if the server says 404.
fn fetch_small(agent: &ureq::Agent, url: &str) -> Result<Option<String>, DataError> {
    let Some(mut response) = get(agent, url, true)? else {
        return Ok(None);
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| network_error(url, e))?;
    Ok(Some(text))
}

/// Downloads `file` into a temporary file next to `target`, checking its
/// digest. The temporary file is removed on error, and on drop unless
/// persisted.
fn fetch_verified(
    agent: &ureq::Agent,
    source: &Source,
    file: &RemoteFile,
    target: &Path,
    progress: &mut dyn Write,
) -> Result<(TempFile, Downloaded), DataError> {
    let url = source.url(file);
    let _ = writeln!(progress, "downloading {url}");
    let _ = progress.flush();
    let mut response = get_required(agent, &url)?;
    let tmp = TempFile::create_for(target).map_err(|e| DataError::write(target, e))?;
    let out = File::create(tmp.path()).map_err(|e| DataError::write(tmp.path(), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut body = response.body_mut().as_reader();
    let mut digest = md5::Context::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(network_error(&url, ureq::Error::from(e))),
        };
        digest.consume(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::write(target, e))?;
        bytes += n as u64;
    }
    out.flush().map_err(|e| DataError::write(target, e))?;
    drop(out);
    let actual = format!("{:x}", digest.finalize());
    if actual != file.md5.to_ascii_lowercase() {
        return Err(DataError::Checksum {
            file: file.name.clone(),
            url,
            expected: file.md5.clone(),
            actual,
        });
    }
    let _ = writeln!(progress, "  {bytes} bytes, md5 {actual} ok");
    Ok((
        tmp,
        Downloaded {
            file: file.name.clone(),
            url,
            bytes,
        },
    ))
}

/// The md5 digest of a file on disk, `None` if it cannot be read.
fn md5_of_file(path: &Path) -> Option<String> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let mut digest = md5::Context::new();
    io::copy(&mut file, &mut digest).ok()?;
    Some(format!("{:x}", digest.finalize()))
}

/// A hidden temporary directory in `parent`, removed with its contents on
/// drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create_in(parent: &Path, label: &str) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!(".{label}.swalp-tmp-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!(
                    "could not remove temporary folder {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// Extracts a verified CIFAR archive into `dir`: unpacks it into a
/// temporary folder, checks the data folder with the reader, then renames
/// it into place (replacing an unreadable copy).
fn extract_cifar(
    name: DataName,
    archive: &Path,
    dir: &Path,
    from: &Downloaded,
    progress: &mut dyn Write,
) -> Result<(), DataError> {
    let folder = match name {
        DataName::Cifar100 => CIFAR100_FOLDER,
        _ => CIFAR10_FOLDER,
    };
    let archive_error = |reason: String| DataError::Archive {
        file: from.file.clone(),
        url: from.url.clone(),
        reason,
    };
    let staging = TempDir::create_in(dir, folder).map_err(|e| DataError::write(dir, e))?;
    let _ = writeln!(progress, "  extracting {folder}/");
    unpack_tar_gz(archive, &staging.path)
        .map_err(|e| archive_error(format!("cannot extract: {e}")))?;
    let extracted = staging.path.join(folder);
    if !extracted.is_dir() {
        return Err(archive_error(format!(
            "the archive has no folder {folder}/"
        )));
    }
    if let Err(e) = super::read(name, &extracted) {
        let reason = match &e {
            DataError::File { path, problem, .. } => {
                let inner = path.strip_prefix(&staging.path).unwrap_or(path);
                format!("{} in the archive: {problem}", inner.display())
            }
            other => other.to_string(),
        };
        return Err(archive_error(reason));
    }
    let target = dir.join(folder);
    if fs::symlink_metadata(&target).is_ok() {
        // An unreadable copy (the reader refused `dir` above): set it aside
        // inside the staging folder, which is removed on return.
        log::warn!("replacing unreadable {}", target.display());
        fs::rename(&target, staging.path.join(".old")).map_err(|e| DataError::write(&target, e))?;
    }
    fs::rename(&extracted, &target).map_err(|e| DataError::write(&target, e))?;
    Ok(())
}

/// Unpacks the regular files and folders of a `.tar.gz` into `into`,
/// refusing absolute paths and `..`.
fn unpack_tar_gz(archive: &Path, into: &Path) -> io::Result<()> {
    let file = File::open(archive)?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let path = entry.path()?.into_owned();
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsafe path {} in the archive", path.display()),
            ));
        }
        entry.unpack_in(into)?;
    }
    Ok(())
}
