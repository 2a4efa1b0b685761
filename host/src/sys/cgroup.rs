//! Memory and process-count limits for snippet processes through Linux
//! control groups (v2, or the v1 `memory` and `pids` hierarchies). When the
//! host cannot create groups, runs go on without them and their results
//! say the limits were not enforced.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Limits for one process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupLimits {
    /// Memory ceiling in bytes.
    pub memory_bytes: u64,
    /// Most processes and threads at once.
    pub pids: u64,
}

/// Where berth's groups live.
#[derive(Debug, Clone)]
enum Layout {
    /// One unified hierarchy, with `memory` and `pids` enabled below `dir`.
    V2 { dir: PathBuf },
    /// Separate v1 hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
}

/// The parent groups berth creates its per-process groups in.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
}

/// One process tree's group (one directory per hierarchy); removed on drop
/// after killing anything still inside.
#[derive(Debug)]
pub struct CallGroup {
    dirs: Vec<PathBuf>,
    procs_files: Vec<CString>,
}

impl Cgroups {
    /// Find a usable cgroup mount under `root` (normally `/sys/fs/cgroup`)
    /// and create berth's parent group there; `None` when that fails.
    pub fn detect(root: &Path) -> Option<Cgroups> {
        let v2 = root.join("cgroup.controllers");
        let layout = if v2.is_file() {
            let dir = root.join("berth");
            std::fs::create_dir_all(&dir).ok()?;
            // Controllers must be enabled for the children of berth's group.
            std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids").ok()?;
            Layout::V2 { dir }
        } else {
            let memory = root.join("memory/berth");
            let pids = root.join("pids/berth");
            std::fs::create_dir_all(&memory).ok()?;
            std::fs::create_dir_all(&pids).ok()?;
            Layout::V1 { memory, pids }
        };
        let cgroups = Cgroups { layout };
        // Prove it works end to end before relying on it.
        cgroups
            .create(GroupLimits {
                memory_bytes: 64 << 20,
                pids: 16,
            })
            .ok()?;
        Some(cgroups)
    }

    /// A fresh group with `limits` applied.
    pub fn create(&self, limits: GroupLimits) -> anyhow::Result<CallGroup> {
        let name = format!("run-{}", uuid::Uuid::new_v4().simple());
        let settings: Vec<(PathBuf, Vec<(&str, String)>)> = match &self.layout {
            Layout::V2 { dir } => vec![(
                dir.join(&name),
                vec![
                    ("memory.max", limits.memory_bytes.to_string()),
                    ("memory.swap.max", "0".to_string()),
                    ("pids.max", limits.pids.to_string()),
                ],
            )],
            Layout::V1 { memory, pids } => vec![
                (
                    memory.join(&name),
                    vec![("memory.limit_in_bytes", limits.memory_bytes.to_string())],
                ),
                (
                    pids.join(&name),
                    vec![("pids.max", limits.pids.to_string())],
                ),
            ],
        };
        let mut group = CallGroup {
            dirs: Vec::new(),
            procs_files: Vec::new(),
        };
        for (dir, files) in settings {
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            group.dirs.push(dir.clone());
            for (file, value) in files {
                let path = dir.join(file);
                // Swap accounting may be off on this kernel; the memory
                // ceiling still holds without it.
                if let Err(err) = std::fs::write(&path, &value)
                    && file != "memory.swap.max"
                {
                    return Err(err).with_context(|| format!("writing {}", path.display()));
                }
            }
            let procs = dir.join("cgroup.procs");
            group.procs_files.push(
                CString::new(procs.as_os_str().as_encoded_bytes())
                    .context("cgroup path contains NUL")?,
            );
        }
        Ok(group)
    }
}

impl CallGroup {
    /// Move the calling process into this group. Meant for `pre_exec`: it
    /// only uses async-signal-safe calls.
    pub fn join_self(&self) -> std::io::Result<()> {
        join(&self.procs_files)
    }

    /// The `cgroup.procs` file of each hierarchy, for [`join`] in a
    /// process about to start.
    pub fn procs_files(&self) -> &[CString] {
        &self.procs_files
    }

    /// Move the running process `pid` into this group.
    pub fn add(&self, pid: i32) -> anyhow::Result<()> {
        for file in &self.procs_files {
            let path = Path::new(std::ffi::OsStr::from_bytes(file.as_bytes()));
            std::fs::write(path, pid.to_string())
                .with_context(|| format!("moving process {pid} into {}", path.display()))?;
        }
        Ok(())
    }

    /// Kill every process still in the group, including those a member
    /// forks while this runs.
    pub fn kill_all(&self) {
        for dir in &self.dirs {
            // cgroup v2 since Linux 5.14: one write kills every member, and
            // the kernel stops forks racing it.
            if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                continue;
            }
            // Elsewhere, a member may fork between reading the list and the
            // signal: kill what is listed until nothing is.
            for _ in 0..KILL_ROUNDS {
                let Ok(listed) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                    break;
                };
                let pids: Vec<i32> = listed
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    // SAFETY: kill only sends a signal.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                std::thread::yield_now();
            }
        }
    }

    /// Whether the group's memory ceiling was hit (the kernel killed a
    /// member, or refused it memory).
    pub fn memory_exceeded(&self) -> bool {
        self.dirs.iter().any(|dir| {
            let v2 = std::fs::read_to_string(dir.join("memory.events"))
                .ok()
                .and_then(|events| {
                    events
                        .lines()
                        .find_map(|l| l.strip_prefix("oom_kill ").map(|n| n.trim() != "0"))
                });
            let v1 = std::fs::read_to_string(dir.join("memory.failcnt"))
                .ok()
                .map(|n| n.trim() != "0");
            v2.or(v1).unwrap_or(false)
        })
    }

    /// Whether the process limit refused a fork.
    pub fn pids_exceeded(&self) -> bool {
        self.dirs.iter().any(|dir| {
            std::fs::read_to_string(dir.join("pids.events"))
                .ok()
                .and_then(|events| {
                    events
                        .lines()
                        .find_map(|l| l.strip_prefix("max ").map(|n| n.trim() != "0"))
                })
                .unwrap_or(false)
        })
    }
}

/// Rounds of listing and killing a group's members where the kernel has no
/// `cgroup.kill`; killed members leave the list as they exit.
const KILL_ROUNDS: usize = 200;

/// Move the calling process into the groups whose `cgroup.procs` files are
/// `procs_files`. Meant for `pre_exec`: it only uses async-signal-safe calls.
pub fn join(procs_files: &[CString]) -> std::io::Result<()> {
    for file in procs_files {
        // SAFETY: `file` is a valid NUL-terminated path; open, write
        // and close are async-signal-safe.
        unsafe {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" means the writing process itself.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

impl Drop for CallGroup {
    fn drop(&mut self) {
        self.kill_all();
        let dirs = std::mem::take(&mut self.dirs);
        // The kernel empties the group asynchronously after its last member
        // exits; waiting for that here would hold up the call's result.
        std::thread::spawn(move || {
            for dir in &dirs {
                for _ in 0..100 {
                    if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_mount_means_no_cgroups() {
        let root = tempfile::tempdir().unwrap();
        let fake = root.path().join("not-a-cgroup-fs");
        std::fs::write(&fake, "").unwrap();
        assert!(Cgroups::detect(&fake).is_none());
    }

    #[test]
    fn groups_limit_and_clean_up_when_the_host_allows_them() {
        let Some(cgroups) = Cgroups::detect(Path::new("/sys/fs/cgroup")) else {
            eprintln!("SKIP: this host does not let berth create cgroups");
            return;
        };
        let group = cgroups
            .create(GroupLimits {
                memory_bytes: 32 << 20,
                pids: 8,
            })
            .unwrap();
        let dirs = group.dirs.clone();
        assert!(dirs.iter().all(|d| d.is_dir()));
        drop(group);
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            dirs.iter().all(|d| !d.exists())
        });
        assert!(gone, "group dirs left behind");
    }
}
