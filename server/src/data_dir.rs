//! The lock that gives one process a data dir: an exclusive advisory lock (`flock`) on
//! `<data-dir>/LOCK`, held for the life of the process, with the holder's pid written in
//! the file so a refused second server can name it.
//!
//! The kernel releases the lock when the process ends, however it ends (kill -9 included),
//! so a stale `LOCK` file never keeps a restarted server out.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Name of the lock file in a data dir.
pub const LOCK_FILE: &str = "LOCK";

/// Why a data dir could not be locked.
#[derive(Debug, Error)]
pub enum DataDirLockError {
    /// Another process holds the lock.
    #[error(
        "data dir {} is in use by another strata-server{}; \
         a data dir serves one process at a time (stop that one, or pick another --data-dir)",
        dir.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The data dir.
        dir: PathBuf,
        /// The pid written by the holder, when readable.
        holder: Option<u32>,
    },
    /// The data dir or its lock file could not be created, opened or locked.
    #[error("locking data dir {}: {source}", dir.display())]
    Io {
        /// The data dir.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A held lock on a data dir; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    _file: File,
}

impl DataDirLock {
    /// Creates `dir` if needed and takes its lock without waiting; refuses with the
    /// holder's pid when another process (or another lock in this one) has it.
    pub fn acquire(dir: &Path) -> Result<Self, DataDirLockError> {
        let io = |source| DataDirLockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns (`file` outlives the call); it
        // touches no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(DataDirLockError::InUse {
                    dir: dir.to_path_buf(),
                    holder: holder_pid(&mut file),
                });
            }
            return Err(io(error));
        }
        // The pid is for the message of a refused second server only: failing to write it
        // does not weaken the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data());
        Ok(Self {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The pid the holder wrote in the lock file, if readable.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_held_dir_is_refused_with_the_pid_and_free_after_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let held = DataDirLock::acquire(&data).expect("first lock");
        assert_eq!(held.dir(), data);
        match DataDirLock::acquire(&data) {
            Err(e @ DataDirLockError::InUse { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&data.display().to_string()), "{text}");
                assert!(
                    text.contains(&format!("pid {}", std::process::id())),
                    "{text}"
                );
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(held);
        DataDirLock::acquire(&data).expect("free again after drop");
    }
}
