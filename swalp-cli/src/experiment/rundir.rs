//! A run directory, owned by one run at a time.
//!
//! A run claims its directory before it writes anything: it takes an
//! advisory lock on `DIR/.lock` for its whole life (a second run into the
//! same directory is refused while the first holds it), removes the debris
//! a killed run can leave (half-written checkpoints, temporary files: with
//! the lock held nobody else is writing them), and refuses to start afresh
//! in a directory that holds another run's outputs unless told to replace
//! them. A directory the claim created and the run never wrote into is
//! removed again when the run fails.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::ExperimentError;

/// What a run does with its directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Claim {
    /// Start a new run: the directory must not hold another run's outputs.
    #[default]
    Fresh,
    /// Continue the run the directory holds.
    Resume,
    /// Start a new run, deleting the outputs of the one the directory holds
    /// (files that are not run outputs are kept).
    Overwrite,
}

/// The lock file, held for the run's life.
pub const LOCK_FILE: &str = ".lock";

/// What a run writes into its directory, by name (TensorBoard event files
/// are recognised by their prefix, [`EVENTS_PREFIX`]).
pub const RUN_OUTPUTS: [&str; 6] = [
    "config.toml",
    "metrics.jsonl",
    "result.json",
    "model_sgd.safetensors",
    "model_swa.safetensors",
    "checkpoints",
];

/// The prefix of TensorBoard event files.
pub const EVENTS_PREFIX: &str = "events.out.tfevents.";

/// Why a directory cannot be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimProblem {
    /// The path exists and is not a directory.
    NotADirectory,
    /// Another process holds the directory's lock.
    Busy,
    /// The directory holds another run's outputs (the first one found).
    Occupied {
        /// One of them.
        found: String,
    },
}

/// A claimed run directory; the lock is released when it is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// Holds the advisory lock.
    _lock: File,
    /// The outermost directory the claim created (`path` or one of its
    /// parents), if any.
    created: Option<PathBuf>,
}

impl RunDir {
    /// Claims `path` for a run (creating it, with its parents, when
    /// missing).
    pub fn claim(path: &Path, claim: Claim) -> Result<RunDir, ExperimentError> {
        let problem = |problem| ExperimentError::RunDir {
            run_dir: path.into(),
            problem,
        };
        if path.exists() && !path.is_dir() {
            return Err(problem(ClaimProblem::NotADirectory));
        }
        let created = path
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
            .last()
            .map(Path::to_path_buf);
        fs::create_dir_all(path).map_err(|e| output_error(path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let Some(lock) =
            crate::atomic::lock_file(&lock_path).map_err(|e| output_error(&lock_path, e))?
        else {
            // Not ours to remove, even if we created it a moment ago.
            return Err(problem(ClaimProblem::Busy));
        };
        let dir = RunDir {
            path: path.into(),
            _lock: lock,
            created,
        };
        dir.remove_debris()?;
        match claim {
            Claim::Resume => {}
            Claim::Fresh => {
                if let Some(found) = dir.run_outputs()?.first() {
                    let found = found
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let err = problem(ClaimProblem::Occupied { found });
                    return Err(dir.abandon(err));
                }
            }
            Claim::Overwrite => {
                for old in dir.run_outputs()? {
                    remove_any(&old)?;
                }
            }
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run outputs present in the directory.
    fn run_outputs(&self) -> Result<Vec<PathBuf>, ExperimentError> {
        let mut found = Vec::new();
        for entry in read_dir(&self.path)? {
            let name = entry.to_string_lossy();
            if RUN_OUTPUTS.contains(&name.as_ref()) || name.starts_with(EVENTS_PREFIX) {
                found.push(self.path.join(&entry));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes what a killed run leaves behind: temporary files in the
    /// directory and half-written checkpoints in `checkpoints/`.
    fn remove_debris(&self) -> Result<(), ExperimentError> {
        let checkpoints = self.path.join("checkpoints");
        for dir in [&self.path, &checkpoints] {
            if !dir.is_dir() {
                continue;
            }
            for entry in read_dir(dir)? {
                let name = entry.to_string_lossy();
                let partial = name.starts_with(super::checkpoint::PARTIAL_PREFIX);
                if partial || (name.starts_with('.') && name.contains(crate::atomic::TEMP_MARKER)) {
                    remove_any(&dir.join(&entry))?;
                }
            }
        }
        Ok(())
    }

    /// Gives up the directory after `error`: removes it (and the parents
    /// the claim created) if nothing but the lock was written; returns
    /// `error`.
    pub fn abandon(self, error: ExperimentError) -> ExperimentError {
        let Some(root) = &self.created else {
            return error;
        };
        let only_lock = read_dir(&self.path)
            .map(|names| names.iter().all(|n| n == LOCK_FILE))
            .unwrap_or(false);
        if only_lock {
            // Best effort: the error being reported matters more, and a
            // directory someone else wrote into meanwhile stays.
            let _ = fs::remove_file(self.path.join(LOCK_FILE));
            for dir in self.path.ancestors() {
                if fs::remove_dir(dir).is_err() || dir == root {
                    break;
                }
            }
        }
        error
    }
}

fn output_error(path: &Path, e: io::Error) -> ExperimentError {
    ExperimentError::Output {
        path: path.into(),
        source: e.into(),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<std::ffi::OsString>, ExperimentError> {
    let entries = fs::read_dir(dir).map_err(|e| output_error(dir, e))?;
    entries
        .map(|e| e.map(|e| e.file_name()).map_err(|e| output_error(dir, e)))
        .collect()
}

fn remove_any(path: &Path) -> Result<(), ExperimentError> {
    let removed = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| output_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run");
        let first = RunDir::claim(&path, Claim::Fresh).unwrap();
        let second = RunDir::claim(&path, Claim::Resume).unwrap_err();
        assert!(
            matches!(
                &second,
                ExperimentError::RunDir {
                    problem: ClaimProblem::Busy,
                    ..
                }
            ),
            "{second}"
        );
        drop(first);
        RunDir::claim(&path, Claim::Resume).unwrap();
    }

    #[test]
    fn fresh_refuses_outputs_overwrite_removes_only_them() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path();
        fs::write(path.join("notes.txt"), "mine").unwrap();
        fs::write(path.join("events.out.tfevents.1.host"), "").unwrap();
        fs::create_dir_all(path.join("checkpoints/step-1")).unwrap();
        let err = RunDir::claim(path, Claim::Fresh).unwrap_err();
        assert!(err.to_string().contains("checkpoints"), "{err}");
        assert!(path.join("checkpoints").exists(), "nothing removed");
        drop(RunDir::claim(path, Claim::Overwrite).unwrap());
        assert!(!path.join("checkpoints").exists());
        assert!(!path.join("events.out.tfevents.1.host").exists());
        assert_eq!(fs::read_to_string(path.join("notes.txt")).unwrap(), "mine");
        RunDir::claim(path, Claim::Fresh).unwrap();
    }

    #[test]
    fn debris_is_removed_and_an_unused_new_directory_abandoned() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run");
        fs::create_dir_all(path.join("checkpoints/.partial-4242")).unwrap();
        fs::write(path.join(".result.json.swalp-tmp-x1"), "").unwrap();
        fs::write(path.join(".hidden"), "").unwrap();
        drop(RunDir::claim(&path, Claim::Resume).unwrap());
        assert!(!path.join("checkpoints/.partial-4242").exists());
        assert!(!path.join(".result.json.swalp-tmp-x1").exists());
        assert!(path.join(".hidden").exists());

        let fresh = tmp.path().join("new/run");
        let dir = RunDir::claim(&fresh, Claim::Fresh).unwrap();
        let err = dir.abandon(ExperimentError::Device("x".into()));
        assert_eq!(err.to_string(), "x");
        assert!(!tmp.path().join("new").exists());
        assert!(!path.join("missing").exists());
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        let err = RunDir::claim(&file, Claim::Fresh).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
