//! Atomic file replacement: write a temporary file next to the target, then
//! rename it over the target, so the target is either untouched or complete.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A temporary file in the target's directory, removed on drop unless
/// [`persist`](Self::persist)ed.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    target: PathBuf,
    persisted: bool,
}

impl TempFile {
    /// Creates a fresh, empty temporary file for `target` in its directory
    /// (hidden, named after `target`, never an existing file).
    pub fn create_for(target: &Path) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = parent_dir(target);
        let name = target.file_name().unwrap_or_default();
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".swalp-tmp-{}-{n}", std::process::id()));
            let path = dir.join(tmp_name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => {
                    return Ok(TempFile {
                        path,
                        target: target.to_path_buf(),
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free temporary file name",
        ))
    }

    /// Where to write the contents.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the written contents to disk and renames the file to the
    /// target, replacing it.
    pub fn persist(mut self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()?;
        fs::rename(&self.path, &self.target)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!(
                    "could not remove temporary file {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// The directory a file path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `contents` to `path` atomically: into a [`TempFile`] beside it,
/// flushed and renamed over `path`.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = TempFile::create_for(path)?;
    fs::write(tmp.path(), contents)?;
    tmp.persist()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_live_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("a.npy")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/a.npy")), Path::new("d"));
    }
}
