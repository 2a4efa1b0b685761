//! One owner per data directory: the serving berth holds an exclusive lock
//! on `berth.lock` for its lifetime. Only the owner clears what earlier runs
//! left behind (workspaces, unfinished environments, orphaned sandboxes);
//! one-off commands beside it leave all of that alone.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock a serving berth holds on its data directory; released when
/// dropped (or when the process dies, whatever the way).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why a data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error(
        "another berth (pid {holder}) already serves data dir {dir}; stop it, or give this one another --data-dir"
    )]
    Held {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("locking data dir {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl DataDirLock {
    /// Take `dir` for this process, or say who has it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("berth.lock"))
            .map_err(io)?;
        // SAFETY: flock only acts on the descriptor `file` owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io(err));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Held {
                dir: dir.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// Whether `meta` (from `symlink_metadata`) is a regular file of berth's
/// own user that no other user may read or write: the only kind of file in
/// the data dir berth trusts what it reads from.
pub fn private_to_me(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    meta.is_file() && meta.uid() == me && meta.permissions().mode() & 0o077 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
