//! Downloading the real data sets: `swalp-cli data download NAME [--dir D]`.
//!
//! All or nothing: every file is fetched over HTTP(S) into a hidden staging
//! folder inside the target directory (`D/.NAME.swalp-download-PID-N/`)
//! while its md5 digest is computed, and checked against the expected
//! digest; CIFAR's `.tar.gz` is also unpacked there and its
//! `cifar-10-batches-bin/` or `cifar-100-binary/` folder checked with the
//! reader (the archive is not kept; MNIST-style `.gz` files are kept as they
//! are, the readers read them). Only when the whole set is verified is it
//! moved into place (renames within one file system), and the directory
//! checked with the reader; if anything fails, the moves are undone, the
//! staging folder removed, and `D` is left exactly as it was (a folder
//! created for the download is removed too). A data set the reader already
//! accepts is not downloaded again, and with MNIST-style sets each file
//! already present with the right digest is kept.
//!
//! A download holds an advisory lock on its staging folder for its whole
//! life; the kernel drops it when the process dies, however it dies. The
//! next download into `D` removes every staging folder whose lock it can
//! take: those of killed downloads ([`crate::atomic::is_abandoned`]), never
//! one of a download still running, whatever its process or host.
//!
//! Sources: CIFAR from <https://www.cs.toronto.edu/~kriz/>, MNIST from the
//! torchvision mirror <https://ossci-datasets.s3.amazonaws.com/mnist/>,
//! Fashion-MNIST from
//! <http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/>, with the
//! md5 digests the CIFAR page and torchvision publish ([`Source::canonical`]).
//!
//! Mirrors: `--mirror URL` or the environment variable
//! [`SWALP_DATA_MIRROR`](MIRROR_ENV) replaces the hosts by `URL/<name>/`,
//! where `URL` is `http://HOST[:PORT][/PATH]` or `https://...`
//! ([`check_mirror_url`]), `<name>` is `cifar10`, `cifar100`, `mnist` or
//! `fashion-mnist` and the file names are unchanged (e.g.
//! `URL/mnist/train-images-idx3-ubyte.gz`). If the mirror serves
//! `URL/<name>/checksums.txt` (md5sum format: a hex digest, white space, a
//! file name per line; `#` comments), it must agree with swalp's built-in
//! digests: a file it lists with another digest is an error
//! ([`DataError::MirrorDigest`]) unless the mirror's digests are trusted
//! (`--trust-mirror-checksums`; the download then reports each one it used,
//! [`DownloadReport::digest_overrides`]). Files without a built-in digest
//! are verified with the mirror's. If it answers 404 the built-in digests
//! apply ([`Source::mirror`]).

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
use crate::atomic;

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

    /// The data set on a mirror: files from `mirror/<name>/`, digests
    /// checked against `mirror/<name>/checksums.txt` if it is served (a 404
    /// means there is none). A file the list gives another digest than the
    /// built-in one is a [`DataError::MirrorDigest`], unless
    /// `trust_checksums`: then the mirror's digest is used and returned
    /// among the overrides. Files without a built-in digest (none today)
    /// take the mirror's.
    pub fn mirror(
        name: DataName,
        mirror: &str,
        trust_checksums: bool,
    ) -> Result<(Source, Vec<DigestOverride>), DataError> {
        let mut source = Source::canonical(name);
        source.base_url = format!("{}/{}/", mirror.trim_end_matches('/'), name.name());
        let url = format!("{}{CHECKSUMS_FILE}", source.base_url);
        let Some(text) = fetch_small(&agent(), &url)? else {
            return Ok((source, Vec::new()));
        };
        let digests = parse_checksums(&text).map_err(|reason| DataError::Checksums {
            url: url.clone(),
            reason,
        })?;
        let mut overrides = Vec::new();
        for file in &mut source.files {
            let Some(md5) = digests.get(&file.name) else {
                continue;
            };
            if file.md5.is_empty() {
                file.md5.clone_from(md5);
            } else if !file.md5.eq_ignore_ascii_case(md5) {
                if !trust_checksums {
                    return Err(DataError::MirrorDigest {
                        file: file.name.clone(),
                        checksums_url: url,
                        built_in: file.md5.clone(),
                        mirror: md5.clone(),
                    });
                }
                overrides.push(DigestOverride {
                    file: file.name.clone(),
                    built_in: std::mem::replace(&mut file.md5, md5.clone()),
                    mirror: md5.clone(),
                });
            }
        }
        Ok((source, overrides))
    }

    /// The URL of `file`.
    pub fn url(&self, file: &RemoteFile) -> String {
        format!("{}{}", self.base_url, file.name)
    }
}

/// A file verified with a mirror's digest instead of swalp's built-in one
/// (`--trust-mirror-checksums`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestOverride {
    /// The file name.
    pub file: String,
    /// swalp's built-in md5 digest.
    pub built_in: String,
    /// The mirror's md5 digest, the one used.
    pub mirror: String,
}

/// Where [`download`] gets a data set from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The official host and digests: [`Source::canonical`].
    Canonical,
    /// A mirror: [`Source::mirror`].
    Mirror {
        /// Its base URL, checked by [`check_mirror_url`].
        url: String,
        /// Whether its `checksums.txt` may replace built-in digests it
        /// disagrees with.
        trust_checksums: bool,
    },
    /// Exactly these files and digests.
    Custom(Source),
}

impl Origin {
    /// `--mirror` if given, else the [`MIRROR_ENV`] environment variable if
    /// set and not blank, else the official hosts. A mirror URL that is not
    /// `http(s)://HOST[:PORT][/PATH]` is a [`DataError::MirrorUrl`] naming
    /// where it came from.
    pub fn from_flag_or_env(
        mirror: Option<&str>,
        trust_checksums: bool,
    ) -> Result<Origin, DataError> {
        let env = std::env::var(MIRROR_ENV).ok();
        let (value, given_by) = match (mirror, env.as_deref()) {
            (Some(flag), _) => (flag, "--mirror"),
            (None, Some(env)) if !env.trim().is_empty() => (env, MIRROR_ENV),
            _ => return Ok(Origin::Canonical),
        };
        let url = check_mirror_url(value).map_err(|reason| DataError::MirrorUrl {
            value: value.to_string(),
            given_by,
            reason,
        })?;
        Ok(Origin::Mirror {
            url,
            trust_checksums,
        })
    }

    /// The files and digests (fetches a mirror's `checksums.txt`), with the
    /// built-in digests a trusted mirror replaced.
    pub fn source(&self, name: DataName) -> Result<(Source, Vec<DigestOverride>), DataError> {
        match self {
            Origin::Canonical => Ok((Source::canonical(name), Vec::new())),
            Origin::Mirror {
                url,
                trust_checksums,
            } => Source::mirror(name, url, *trust_checksums),
            Origin::Custom(source) => Ok((source.clone(), Vec::new())),
        }
    }
}

/// Checks a mirror URL: `http://` or `https://`, a host name or IP address
/// (IPv6 in brackets), an optional port in 1..=65535, an optional path; no
/// white space, query, fragment or user name. Returns it without
/// surrounding white space, or what is wrong with it.
pub fn check_mirror_url(value: &str) -> Result<String, String> {
    let url = value.trim();
    if url.is_empty() {
        return Err("it is empty".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("it has no scheme".into());
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!("unsupported scheme {scheme:?}"));
    }
    if let Some(c) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\'))
    {
        return Err(format!(
            "{c:?} is not allowed (no white space, query or fragment)"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("user names and passwords are not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let Some((host, after)) = v6.split_once(']') else {
                return Err("the IPv6 address has no closing ']'".into());
            };
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err(format!("invalid IPv6 address [{host}]"));
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("unexpected {after:?} after the IPv6 address")),
                },
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("invalid host {host:?}"));
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("port {port:?} is not a number"));
        }
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => return Err(format!("port {port} is out of range")),
        }
    }
    Ok(url.to_string())
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
    /// Built-in digests replaced by a trusted mirror's
    /// (`--trust-mirror-checksums`), for the caller to report.
    pub digest_overrides: Vec<DigestOverride>,
    /// Staging folders of interrupted downloads that were removed.
    pub removed_stale: Vec<PathBuf>,
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
/// with [`super::read`]; on error `dir` is left as it was: the set is staged
/// and verified in full before anything is moved into place (see the module
/// documentation).
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
        digest_overrides: Vec::new(),
        removed_stale: Vec::new(),
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
    let (source, overrides) = origin.source(name)?;
    report.digest_overrides = overrides;
    let created = create_dirs(dir)?;
    let result = stage_and_install(name, dir, &source, &mut report, progress);
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

/// [`download`] once `dir` exists: removes abandoned staging folders,
/// stages and verifies the set, moves it into place and checks it with the
/// reader, undoing the moves if that fails.
fn stage_and_install(
    name: DataName,
    dir: &Path,
    source: &Source,
    report: &mut DownloadReport,
    progress: &mut dyn Write,
) -> Result<(), DataError> {
    report.removed_stale = remove_abandoned_staging(dir);
    for stale in &report.removed_stale {
        let _ = writeln!(
            progress,
            "removed {} (left by an interrupted download)",
            stale.display()
        );
    }
    let staging = Staging::create(dir, name).map_err(|e| DataError::write(dir, e))?;
    let moves = stage(name, dir, &staging.path, source, report, progress)?;
    let installed = install(&staging.path, &moves)?;
    // Loose files in `dir` shadow the extracted folder; report them, and put
    // `dir` back as it was (the replaced files are still in the staging
    // folder).
    if let Err(e) = super::read(name, dir) {
        installed.undo();
        return Err(e);
    }
    let _ = writeln!(progress, "{} is ready in {}", name.title(), dir.display());
    Ok(())
}

/// Fetches and verifies into `staging` every file `dir` lacks; returns the
/// moves that put the set in place: (staged path, target path).
fn stage(
    name: DataName,
    dir: &Path,
    staging: &Path,
    source: &Source,
    report: &mut DownloadReport,
    progress: &mut dyn Write,
) -> Result<Vec<(PathBuf, PathBuf)>, DataError> {
    let agent = agent();
    let mut moves = Vec::new();
    match name {
        DataName::Cifar10 | DataName::Cifar100 => {
            for file in &source.files {
                let archive = staging.join(&file.name);
                let target = dir.join(&file.name);
                let done = fetch_verified(&agent, source, file, &archive, &target, progress)?;
                let (extracted, target) =
                    extract_cifar(name, &archive, staging, dir, &done, progress)?;
                moves.push((extracted, target));
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
                let staged = staging.join(&file.name);
                let done = fetch_verified(&agent, source, file, &staged, &target, progress)?;
                moves.push((staged, target));
                report.downloaded.push(done);
            }
        }
    }
    Ok(moves)
}

/// A move [`install`] made, and the file or folder it set aside.
struct Moved {
    from: PathBuf,
    to: PathBuf,
    replaced: Option<PathBuf>,
}

/// The moves [`install`] made, to undo.
struct Installed(Vec<Moved>);

impl Installed {
    /// Puts everything back, last move first (best effort: renames within
    /// one folder tree).
    fn undo(self) {
        for moved in self.0.into_iter().rev() {
            let _ = fs::rename(&moved.to, &moved.from);
            if let Some(replaced) = moved.replaced {
                let _ = fs::rename(replaced, &moved.to);
            }
        }
    }
}

/// Renames each staged file or folder to its target, first setting aside
/// into `staging` whatever the target holds (a corrupt file, an unreadable
/// folder); on failure undoes every move made.
fn install(staging: &Path, moves: &[(PathBuf, PathBuf)]) -> Result<Installed, DataError> {
    let aside = staging.join(".replaced");
    let mut installed = Installed(Vec::new());
    for (i, (from, to)) in moves.iter().enumerate() {
        match install_one(&aside, i, from, to) {
            Ok(replaced) => installed.0.push(Moved {
                from: from.clone(),
                to: to.clone(),
                replaced,
            }),
            Err(e) => {
                installed.undo();
                return Err(e);
            }
        }
    }
    Ok(installed)
}

/// One move of [`install`]: returns where the target's old contents went.
fn install_one(
    aside: &Path,
    i: usize,
    from: &Path,
    to: &Path,
) -> Result<Option<PathBuf>, DataError> {
    let replaced = if fs::symlink_metadata(to).is_ok() {
        fs::create_dir_all(aside).map_err(|e| DataError::write(to, e))?;
        let old = aside.join(i.to_string());
        fs::rename(to, &old).map_err(|e| DataError::write(to, e))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(from, to) {
        if let Some(old) = &replaced {
            let _ = fs::rename(old, to);
        }
        return Err(DataError::write(to, e));
    }
    Ok(replaced)
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

/// Downloads `file` into `into` (a new file in the staging folder),
/// checking its digest; `target`, where it is going, names it in errors.
fn fetch_verified(
    agent: &ureq::Agent,
    source: &Source,
    file: &RemoteFile,
    into: &Path,
    target: &Path,
    progress: &mut dyn Write,
) -> Result<Downloaded, DataError> {
    let url = source.url(file);
    let _ = writeln!(progress, "downloading {url}");
    let _ = progress.flush();
    let mut response = get_required(agent, &url)?;
    let out = File::create_new(into).map_err(|e| DataError::write(target, e))?;
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
    let out = out
        .into_inner()
        .map_err(|e| DataError::write(target, e.into_error()))?;
    out.sync_all().map_err(|e| DataError::write(target, e))?;
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
    Ok(Downloaded {
        file: file.name.clone(),
        url,
        bytes,
    })
}

/// The md5 digest of a file on disk, `None` if it cannot be read.
fn md5_of_file(path: &Path) -> Option<String> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let mut digest = md5::Context::new();
    io::copy(&mut file, &mut digest).ok()?;
    Some(format!("{:x}", digest.finalize()))
}

/// The infix of staging folder names: `.{data set}.swalp-download-{PID}-{N}`.
const STAGING_INFIX: &str = ".swalp-download-";

/// A download's hidden staging folder in the target directory, locked
/// (see [`crate::atomic::is_abandoned`]) and removed with its contents on
/// drop.
struct Staging {
    path: PathBuf,
    /// The open folder holding the lock, released on drop.
    _lock: Option<File>,
}

impl Staging {
    fn create(dir: &Path, name: DataName) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                ".{}{STAGING_INFIX}{}-{n}",
                name.name(),
                std::process::id()
            ));
            match fs::create_dir(&path) {
                Ok(()) => {
                    // Where the file system has no locks, the folder is only
                    // ever seen as in use (kept), never as abandoned.
                    let lock = File::open(&path)
                        .ok()
                        .filter(|f| atomic::try_lock_exclusive(f).unwrap_or(false));
                    return Ok(Staging { path, _lock: lock });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Best effort: what cannot be removed now, the next download will.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the staging folders in `dir` whose download is gone (their lock
/// can be taken), of any data set; returns those removed. Best effort:
/// what cannot be listed or removed is left.
fn remove_abandoned_staging(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let is_staging = file_name.starts_with('.')
            && DataName::ALL.iter().any(|d| {
                file_name
                    .strip_prefix('.')
                    .and_then(|rest| rest.strip_prefix(d.name()))
                    .is_some_and(|rest| rest.starts_with(STAGING_INFIX))
            });
        let path = entry.path();
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_dir());
        if is_staging && is_dir && atomic::is_abandoned(&path) && fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}

/// Extracts a verified CIFAR archive inside `staging` and checks the data
/// folder with the reader; returns it and its target in `dir`.
fn extract_cifar(
    name: DataName,
    archive: &Path,
    staging: &Path,
    dir: &Path,
    from: &Downloaded,
    progress: &mut dyn Write,
) -> Result<(PathBuf, PathBuf), DataError> {
    let folder = match name {
        DataName::Cifar100 => CIFAR100_FOLDER,
        _ => CIFAR10_FOLDER,
    };
    let target = dir.join(folder);
    let archive_error = |reason: String| DataError::Archive {
        file: from.file.clone(),
        url: from.url.clone(),
        reason,
    };
    let into = staging.join(".extracted");
    fs::create_dir(&into).map_err(|e| DataError::write(&target, e))?;
    let _ = writeln!(progress, "  extracting {folder}/");
    if let Err(e) = unpack_tar_gz(archive, &into) {
        // Failing to write (a full disk) is not the archive's fault.
        return Err(match atomic::os_error_code(&e) {
            Some(_) => DataError::write(&target, e),
            None => archive_error(format!("cannot extract: {e}")),
        });
    }
    // The archive is not kept: free its space before moving in.
    let _ = fs::remove_file(archive);
    let extracted = into.join(folder);
    if !extracted.is_dir() {
        return Err(archive_error(format!(
            "the archive has no folder {folder}/"
        )));
    }
    if let Err(e) = super::read(name, &extracted) {
        let reason = match &e {
            DataError::File { path, problem, .. } => {
                let inner = path.strip_prefix(&into).unwrap_or(path);
                format!("{} in the archive: {problem}", inner.display())
            }
            other => other.to_string(),
        };
        return Err(archive_error(reason));
    }
    if fs::symlink_metadata(&target).is_ok() {
        let _ = writeln!(progress, "  replacing unreadable {}", target.display());
    }
    Ok((extracted, target))
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
