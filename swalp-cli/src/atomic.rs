//! Atomic file replacement: write a temporary file next to the target, then
//! rename it over the target, so the target is either untouched or complete.
//!
//! Debris: a process killed while writing leaves its hidden temporary file
//! (`.{target name}.swalp-tmp-XXXXXX`). Each [`TempFile`] holds an advisory
//! lock on its file for its whole life (the kernel drops it when the process
//! dies, however it dies), so [`remove_stale_temp_files`] can tell an
//! abandoned temporary file from one being written, whatever process, PID
//! namespace or host holds it ([`is_abandoned`]).
//!
//! Errors: [`io_error_is_users`] is the one rule for which I/O errors the
//! user can fix (exit status 2) and which are internal (1).

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
    /// The file is locked (see [`is_abandoned`]) until this value is dropped.
    pub fn create_for(target: &Path) -> io::Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(&temp_prefix(target))
            .tempfile_in(parent_dir(target))?;
        // Best effort: where the file system has no locks, the file is only
        // ever seen as held (kept), never as abandoned.
        let _ = try_lock_exclusive(file.as_file());
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

/// What marks a [`TempFile`]'s name, after `.{target name}`.
pub const TEMP_MARKER: &str = ".swalp-tmp-";

/// The name prefix of `target`'s temporary files: `.{target name}.swalp-tmp-`.
fn temp_prefix(target: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(target.file_name().unwrap_or_default());
    prefix.push(TEMP_MARKER);
    prefix
}

/// Removes the temporary files of `target` (named `.{target name}.swalp-tmp-*`,
/// in its directory) that no live process holds: debris of a writer that was
/// killed. Files of a writer still running (their lock is held), other
/// targets' files and anything that is not a regular file are kept. Returns
/// the paths removed.
pub fn remove_stale_temp_files(target: &Path) -> io::Result<Vec<PathBuf>> {
    let prefix = temp_prefix(target);
    let prefix = prefix.as_encoded_bytes();
    let mut removed = Vec::new();
    for entry in fs::read_dir(parent_dir(target))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.as_encoded_bytes().starts_with(prefix) || name.len() == prefix.len() {
            continue;
        }
        let path = entry.path();
        let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !is_file || !is_abandoned(&path) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            // Another process cleaned it up first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Whether no live process holds the advisory lock on `path` (a file or a
/// directory that swalp locks while writing it, like a [`TempFile`]): `true`
/// means the lock could be taken, so its writer is gone. `false` when the
/// lock is held, or when it cannot be tried (no such file, no permission,
/// no locks on this file system or platform): when in doubt, keep.
pub fn is_abandoned(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => try_lock_exclusive(&file).unwrap_or(false),
        Err(_) => false,
    }
}

/// Opens (creating it if needed) the lock file at `path` and tries to take
/// its exclusive advisory lock without waiting: the file, holding the lock
/// until dropped, or `None` when another process holds it. Where advisory
/// locks do not exist the file is returned unlocked.
pub fn lock_file(path: &Path) -> io::Result<Option<File>> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match try_lock_exclusive(&file) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(Some(file)),
        Err(e) => Err(e),
    }
}

/// Takes an exclusive advisory lock (`flock`) on `file` without waiting:
/// `Ok(true)` if taken (held until every handle to this open file is
/// closed), `Ok(false)` if another open file holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock only reads the descriptor number, which `file`
        // keeps open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(false)
        } else {
            Err(err)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "advisory locks are only used on Unix",
        ))
    }
}

/// Whether the user can fix an I/O error (exit status 2) rather than it
/// being internal, a bug or a failing machine (exit status 1): the one rule
/// for every command that writes files.
///
/// The user's: permission denied (`EACCES`, `EPERM`), a read-only file
/// system (`EROFS`), no space left (`ENOSPC`), a disk quota exceeded
/// (`EDQUOT`), a path component that is not a directory (`ENOTDIR`), a file
/// or a non-empty directory where a directory or file is needed (`EEXIST`,
/// `EISDIR`, `ENOTEMPTY`), a missing directory (`ENOENT`), a path too long or
/// looping (`ENAMETOOLONG`, `ELOOP`). Anything else (`EIO`, ...) is not.
///
/// The OS error code is looked for in `err` and in the errors it wraps (a
/// library may wrap an `io::Error` in its own), so that the classification
/// does not depend on `ErrorKind` variants newer than swalp's minimum Rust.
/// Without any OS code, only `PermissionDenied`, `NotFound` and
/// `AlreadyExists` are the user's.
pub fn io_error_is_users(err: &io::Error) -> bool {
    #[cfg(unix)]
    if let Some(code) = os_error_code(err) {
        return [
            libc::EACCES,
            libc::EPERM,
            libc::EROFS,
            libc::ENOSPC,
            libc::EDQUOT,
            libc::ENOTDIR,
            libc::EEXIST,
            libc::EISDIR,
            libc::ENOTEMPTY,
            libc::ENOENT,
            libc::ENAMETOOLONG,
            libc::ELOOP,
        ]
        .contains(&code);
    }
    matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists
    )
}

/// The OS error code of `err` or of the first `io::Error` with one that it
/// wraps.
pub fn os_error_code(err: &io::Error) -> Option<i32> {
    os_error(err).and_then(io::Error::raw_os_error)
}

/// `err` or the first `io::Error` it wraps that carries an OS error code.
fn os_error(err: &io::Error) -> Option<&io::Error> {
    if err.raw_os_error().is_some() {
        return Some(err);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = match err.get_ref() {
        Some(inner) => Some(inner),
        None => None,
    };
    // Bounded: error chains are short, and a cycle must not hang us.
    for _ in 0..16 {
        let e = next?;
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                return Some(io);
            }
            next = match io.get_ref() {
                Some(inner) => Some(inner),
                None => None,
            };
        } else {
            next = e.source();
        }
    }
    None
}

/// The reason of an I/O error for a one-line message: the OS's text for
/// the OS error it carries or wraps (e.g. `No space left on device (os error
/// 28)`), else the first line of its own text. Never Rust debug text.
pub fn io_error_reason(err: &io::Error) -> String {
    let err = os_error(err).unwrap_or(err);
    err.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
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
    fn stale_temp_files_of_the_target_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().expect("scratch directory");
        let target = dir.path().join("out.npy");
        // A killed writer's file (nobody holds its lock), one being written
        // (held), another target's, and an unrelated hidden file.
        let stale = dir.path().join(".out.npy.swalp-tmp-4194303-abc123");
        fs::write(&stale, b"debris").expect("stale file");
        let live = TempFile::create_for(&target).expect("live temporary file");
        let other = dir.path().join(".other.npy.swalp-tmp-abc123");
        fs::write(&other, b"x").expect("other target's file");
        let hidden = dir.path().join(".out.npy.notes");
        fs::write(&hidden, b"x").expect("hidden file");
        let removed = remove_stale_temp_files(&target).expect("cleanup");
        assert_eq!(removed, std::slice::from_ref(&stale));
        assert!(!stale.exists());
        assert!(live.path().exists(), "a live writer's file is kept");
        assert!(other.exists() && hidden.exists());
        let live_path = live.path().to_path_buf();
        drop(live);
        assert!(!live_path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn io_errors_the_user_can_fix_are_classified_as_theirs() {
        let os = io::Error::from_raw_os_error;
        for code in [
            libc::EACCES,
            libc::EPERM,
            libc::EROFS,
            libc::ENOSPC,
            libc::EDQUOT,
            libc::ENOTDIR,
            libc::EEXIST,
            libc::EISDIR,
            libc::ENOENT,
        ] {
            assert!(io_error_is_users(&os(code)), "{}", os(code));
        }
        for code in [libc::EIO, libc::EBADF, libc::ENOMEM, libc::EXDEV] {
            assert!(!io_error_is_users(&os(code)), "{}", os(code));
        }
        // Wrapped by a library: the OS code inside decides.
        let wrapped = io::Error::other(os(libc::ENOSPC));
        assert!(io_error_is_users(&wrapped));
        assert_eq!(os_error_code(&wrapped), Some(libc::ENOSPC));
        assert!(!io_error_reason(&wrapped).contains("Os {"));
        assert!(io_error_reason(&wrapped).contains("os error"));
        // No OS code: only the portable kinds.
        assert!(io_error_is_users(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
        assert!(!io_error_is_users(&io::Error::other("disk on fire")));
    }

    #[test]
    fn bare_names_live_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("a.npy")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/a.npy")), Path::new("d"));
    }
}
