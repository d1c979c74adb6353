//! Atomic file replacement: write a temporary file next to the target, then
//! rename it over the target, so the target is either untouched or complete.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A temporary file in the target's directory, removed on drop unless
/// [`persist`](Self::persist)ed: the `tempfile` crate's named temporary
/// file (unique name, created exclusively, cleaned up on drop), hidden and
/// named after the target so that debris is recognisable.
#[derive(Debug)]
pub struct TempFile {
    file: tempfile::NamedTempFile,
    target: PathBuf,
}

impl TempFile {
    /// Creates a fresh, empty temporary file for `target` in its directory
    /// (hidden, named after `target`, never an existing file).
    pub fn create_for(target: &Path) -> io::Result<Self> {
        let mut prefix = OsString::from(".");
        prefix.push(target.file_name().unwrap_or_default());
        prefix.push(".swalp-tmp-");
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(parent_dir(target))?;
        Ok(TempFile {
            file,
            target: target.to_path_buf(),
        })
    }

    /// Where to write the contents.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Flushes the written contents to disk and renames the file to the
    /// target, replacing it.
    pub fn persist(self) -> io::Result<()> {
        // Writers may have used their own handle on the path (libtorch
        // does): sync what the path holds, not just this handle.
        File::open(self.file.path())?.sync_all()?;
        self.file.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
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

/// Whether a failed write is one the user can fix (exit code 2): the place
/// is not writable (permission denied, read-only filesystem), full (no
/// space, quota), or not what a path needs (not a directory, already
/// exists). Anything else (I/O errors of the device, ...) is the machine's.
pub fn io_error_is_users(err: &io::Error) -> bool {
    // Raw codes: `ErrorKind::ReadOnlyFilesystem` and `StorageFull` need a
    // newer Rust than the MSRV.
    const EROFS: i32 = 30;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const ENOTDIR: i32 = 20;
    const EISDIR: i32 = 21;
    matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists
    ) || (cfg!(target_os = "linux")
        && matches!(
            err.raw_os_error(),
            Some(EROFS | ENOSPC | EDQUOT | ENOTDIR | EISDIR)
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_target_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().expect("scratch directory");
        let target = dir.path().join("result.json");
        write(&target, b"first").expect("first write");
        write(&target, b"second").expect("second write");
        assert_eq!(fs::read(&target).expect("target"), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [OsString::from("result.json")]);
        // Dropped without persisting: the temporary file goes.
        let tmp = TempFile::create_for(&target).expect("temporary file");
        let tmp_path = tmp.path().to_path_buf();
        assert!(tmp_path.exists());
        drop(tmp);
        assert!(!tmp_path.exists());
        assert_eq!(fs::read(&target).expect("target"), b"second");
    }

    #[test]
    fn bare_names_live_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("a.npy")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/a.npy")), Path::new("d"));
    }
}
