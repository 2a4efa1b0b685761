//! Resource limits (`setrlimit`) of one process tree: they hold with or
//! without cgroups, per process rather than per tree, except the process
//! count, which the kernel keeps per user and user namespace.

/// Limits for one snippet's processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rlimits {
    /// Most processes and threads of the user at once (`RLIMIT_NPROC`).
    /// Only set inside a sandbox, where the count starts from zero; outside
    /// one it would count every process of berth's user.
    pub processes: u64,
    /// Largest file a process may write, bytes (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Most open descriptors per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Largest writable private memory per process, bytes (`RLIMIT_DATA`).
    /// Address space (`RLIMIT_AS`) would be simpler, but V8 reserves
    /// gigabytes it never touches; those reservations are not writable
    /// and do not count here.
    pub data_bytes: u64,
}

impl Rlimits {
    /// The names of the limits that hold for a process started with these,
    /// for results: the process count only when `processes_set` (it was set
    /// inside a sandbox) and berth is not root.
    pub fn held(&self, processes_set: bool) -> Vec<&'static str> {
        let mut held = vec!["file-size", "open-files", "data-memory", "no-core-dumps"];
        if processes_set && !running_as_root() {
            held.insert(0, "processes");
        }
        held
    }

    /// `prlimit`'s options, run first inside a sandbox: only the process
    /// count, as the rest is set before `bwrap` starts and inherited.
    pub fn prlimit_args(&self) -> Vec<String> {
        vec![format!("--nproc={0}:{0}", self.processes)]
    }

    /// Set every limit but the process count on the calling process. Only
    /// calls `setrlimit`, so it is safe between `fork` and `exec`.
    pub fn apply_to_self(&self) -> std::io::Result<()> {
        let set = |resource, value: u64| {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: setrlimit reads the struct and changes only this
            // process's limits.
            if unsafe { libc::setrlimit(resource, &limit) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        set(libc::RLIMIT_FSIZE, self.file_bytes)?;
        set(libc::RLIMIT_NOFILE, self.open_files)?;
        set(libc::RLIMIT_DATA, self.data_bytes)?;
        set(libc::RLIMIT_CORE, 0)
    }
}

/// Whether berth runs as root, for whom the kernel never enforces the
/// process count (cgroups are the only cap then).
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn limits_hold_in_the_started_process() {
        let limits = Rlimits {
            processes: 64,
            file_bytes: 4096,
            open_files: 32,
            data_bytes: 256 << 20,
        };
        let mut command = std::process::Command::new("/bin/sh");
        command.args([
            "-c",
            "ulimit -f; ulimit -n; head -c 10000 /dev/zero > big; wc -c < big",
        ]);
        let dir = tempfile::tempdir().unwrap();
        command.current_dir(dir.path());
        // SAFETY: the hook only calls setrlimit.
        unsafe {
            command.pre_exec(move || limits.apply_to_self());
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        // `ulimit -f` counts 512-byte blocks.
        assert_eq!(lines[0], "8", "{stdout}");
        assert_eq!(lines[1], "32", "{stdout}");
        assert_eq!(
            lines[2], "4096",
            "the write past the file-size limit was not cut: {stdout}"
        );
    }
}
