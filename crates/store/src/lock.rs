//! One running Mailroom per data directory.
//!
//! The desktop app and `mailroom run` take [`DataDirLock`] before they read, reset or write
//! anything in their data directory, and hold it until they exit. The lock is an OS advisory
//! lock on `<data dir>/mailroom.lock` (`flock` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`), so it is released by the OS however the process ends — a
//! SIGKILL or a power cut leaves no stale lock behind. The file's text names the holder
//! (process id, program, start time) so that the second process can say who has it.
//!
//! One-shot commands (`mailroom mailbox add`, …) do not take it: SQLite keeps concurrent
//! writers consistent, and an admin may add a mailbox while the app runs.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "mailroom.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another Mailroom is already running on {}: {holder}. Stop it (or use another data \
         directory) and start again",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error("could not lock the data directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `dir` (created if missing), naming this process as `program`.
    /// Fails at once with [`LockError::Held`] when another process (or another handle in this
    /// one) holds it.
    pub fn acquire(dir: &Path, program: &str) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "a process that has not written its name yet".to_string(),
                    text => text.to_string(),
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = format!(
            "{program} (process {}), started {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DataDirLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // The holder's name goes first, so that a later reader never names a process that has
        // gone; the OS releases the lock itself when the file closes.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path(), "mailroom run").unwrap();
        let err = DataDirLock::acquire(dir.path(), "Mailroom").unwrap_err();
        let LockError::Held { holder, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(holder.contains("mailroom run"), "{holder}");
        assert!(
            holder.contains(&format!("process {}", std::process::id())),
            "{holder}"
        );
        assert!(err.to_string().contains("already running"), "{err}");
        drop(first);
        let again = DataDirLock::acquire(dir.path(), "Mailroom").expect("released on drop");
        assert!(again.path().ends_with(LOCK_FILE));
    }

    #[test]
    fn two_data_directories_lock_independently() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let _a = DataDirLock::acquire(a.path(), "one").unwrap();
        let _b = DataDirLock::acquire(b.path(), "two").unwrap();
    }
}
