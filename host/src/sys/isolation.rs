//! Confining a local process with bubblewrap (`bwrap`): its own user, pid,
//! mount, IPC and UTS namespaces, a root that holds only the system's files
//! (read-only), the directories its call may use, a private `/tmp`, and
//! nothing of berth. Killing `bwrap` tears the whole sandbox down: its
//! first process dies with it and takes its pid namespace along, so not
//! even a `setsid` escapee outlives the call.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;

use super::rlimits::Rlimits;

/// System directories every sandbox sees read-only, when they exist.
const SYSTEM_DIRS: &[&str] = &["/usr", "/etc", "/opt"];

/// Top-level names that are often symlinks into `/usr` (merged-usr
/// systems); bound read-only when they are real directories.
const USR_LINKS: &[&str] = &["/bin", "/sbin", "/lib", "/lib64", "/lib32"];

/// Size of the private `/tmp` of one sandbox.
const TMP_BYTES: u64 = 512 << 20;

/// One entry of the sandbox's root besides the call's own directories.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// A host directory bound read-only at the same path.
    ReadOnly(PathBuf),
    /// A symlink `at` → `target`, as on the host.
    Symlink { target: PathBuf, at: PathBuf },
}

/// How local processes are confined on this host.
#[derive(Debug, Clone)]
pub struct Isolation {
    bwrap: PathBuf,
    prlimit: Option<PathBuf>,
    system: Vec<Entry>,
}

/// What one confined process sees besides the system.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Directories bound read-write at their own paths.
    pub writable: Vec<PathBuf>,
    /// Directories bound read-only at their own paths.
    pub read_only: Vec<PathBuf>,
    /// Whether the process keeps the host's network.
    pub network: bool,
    /// Whether the process may create user namespaces of its own (a fork
    /// server confines each run it forks in one).
    pub nested_namespaces: bool,
}

impl Isolation {
    /// Find `bwrap` on `path` and check that it can build a sandbox here.
    /// `runtimes` are directories a snippet's programs live in outside the
    /// system ones (a pyenv or rustup install); any of them that holds one
    /// of `hidden` (berth's data directory) is left out.
    pub fn detect(
        path: Option<&str>,
        runtimes: &[PathBuf],
        hidden: &[&Path],
    ) -> anyhow::Result<Self> {
        let bwrap = super::process::resolve_program("bwrap", path)
            .context("bubblewrap (`bwrap`) is not installed (apt install bubblewrap)")?;
        let prlimit = super::process::resolve_program("prlimit", path);
        let mut system = Vec::new();
        for dir in SYSTEM_DIRS {
            if Path::new(dir).is_dir() {
                system.push(Entry::ReadOnly(PathBuf::from(dir)));
            }
        }
        for name in USR_LINKS {
            let at = Path::new(name);
            match std::fs::read_link(at) {
                Ok(target) => system.push(Entry::Symlink {
                    target,
                    at: at.to_path_buf(),
                }),
                Err(_) if at.is_dir() => system.push(Entry::ReadOnly(at.to_path_buf())),
                Err(_) => {}
            }
        }
        for dir in runtimes {
            let Ok(dir) = dir.canonicalize() else {
                continue;
            };
            let covered = system
                .iter()
                .any(|e| matches!(e, Entry::ReadOnly(p) if dir.starts_with(p)));
            let exposes = hidden
                .iter()
                .any(|h| h.starts_with(&dir) || dir.starts_with(h));
            if exposes {
                tracing::warn!(
                    dir = %dir.display(),
                    "not shown to snippets: it holds berth's data directory"
                );
            } else if !covered && !system.contains(&Entry::ReadOnly(dir.clone())) {
                system.push(Entry::ReadOnly(dir));
            }
        }
        let isolation = Self {
            bwrap,
            prlimit,
            system,
        };
        isolation.probe()?;
        Ok(isolation)
    }

    /// Run `true` in a sandbox, so a kernel that refuses namespaces is
    /// found at start rather than on the first snippet.
    fn probe(&self) -> anyhow::Result<()> {
        let truth = Path::new("/usr/bin/true");
        let args = self.args(truth, &[], Path::new("/"), &View::default(), None);
        let output = std::process::Command::new(&self.bwrap)
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting {}", self.bwrap.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "{} cannot build a sandbox here ({}): {}",
            self.bwrap.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }

    /// Whether the process limit can be set inside a sandbox (`prlimit` is
    /// installed), where it counts only the sandbox's own processes.
    pub fn limits_processes(&self) -> bool {
        self.prlimit.is_some()
    }

    /// `program args` rewritten to start in a sandbox: `bwrap` and its
    /// arguments.
    pub fn wrap(
        &self,
        program: &Path,
        args: &[String],
        cwd: &Path,
        view: &View,
        limits: Option<&Rlimits>,
    ) -> (PathBuf, Vec<String>) {
        (
            self.bwrap.clone(),
            self.args(program, args, cwd, view, limits),
        )
    }

    /// `bwrap`'s arguments to run `program args` in `cwd` with `view`,
    /// under `limits` when given.
    fn args(
        &self,
        program: &Path,
        args: &[String],
        cwd: &Path,
        view: &View,
        limits: Option<&Rlimits>,
    ) -> Vec<String> {
        let mut out: Vec<String> = [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "berth-sandbox",
        ]
        .map(String::from)
        .to_vec();
        if !view.network {
            out.push("--unshare-net".into());
        }
        if !view.nested_namespaces {
            out.push("--disable-userns".into());
        }
        let mut push = |parts: &[&str]| out.extend(parts.iter().map(|p| p.to_string()));
        for entry in &self.system {
            match entry {
                Entry::ReadOnly(dir) => {
                    let dir = dir.display().to_string();
                    push(&["--ro-bind", &dir, &dir]);
                }
                Entry::Symlink { target, at } => {
                    push(&[
                        "--symlink",
                        &target.display().to_string(),
                        &at.display().to_string(),
                    ]);
                }
            }
        }
        push(&["--proc", "/proc", "--dev", "/dev"]);
        push(&["--size", &TMP_BYTES.to_string(), "--tmpfs", "/tmp"]);
        for dir in &view.read_only {
            let dir = dir.display().to_string();
            push(&["--ro-bind", &dir, &dir]);
        }
        for dir in &view.writable {
            let dir = dir.display().to_string();
            push(&["--bind", &dir, &dir]);
        }
        push(&["--chdir", &cwd.display().to_string(), "--"]);
        if let (Some(prlimit), Some(limits)) = (&self.prlimit, limits) {
            out.push(prlimit.display().to_string());
            out.extend(limits.prlimit_args());
            out.push("--".into());
        }
        out.push(program.display().to_string());
        out.extend(args.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isolation() -> Option<Isolation> {
        let path = std::env::var("PATH").ok();
        match Isolation::detect(path.as_deref(), &[], &[]) {
            Ok(isolation) => Some(isolation),
            Err(err) if std::env::var_os("CI").is_some() => panic!("CI needs bubblewrap: {err:#}"),
            Err(err) => {
                eprintln!("no isolation on this host, test not run: {err:#}");
                None
            }
        }
    }

    fn run(isolation: &Isolation, script: &str, view: &View) -> std::process::Output {
        let (bwrap, args) = isolation.wrap(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            Path::new("/"),
            view,
            None,
        );
        std::process::Command::new(bwrap)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }

    #[test]
    fn a_sandbox_sees_only_what_its_view_names() {
        let Some(isolation) = isolation() else { return };
        let shown = tempfile::tempdir().unwrap();
        let hidden = tempfile::tempdir().unwrap();
        std::fs::write(hidden.path().join("secret"), "x").unwrap();
        let view = View {
            writable: vec![shown.path().to_path_buf()],
            ..View::default()
        };
        let script = format!(
            "test -e {hidden}/secret && echo visible; echo ok > {shown}/out; echo tmp > /tmp/t && cat /tmp/t; touch /usr/evil 2>/dev/null && echo wrote-usr; ls /proc | grep -c '^[0-9]'",
            hidden = hidden.path().display(),
            shown = shown.path().display()
        );
        let output = run(&isolation, &script, &view);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("visible"), "{stdout}");
        assert!(!stdout.contains("wrote-usr"), "{stdout}");
        assert!(stdout.starts_with("tmp\n"), "{stdout}");
        let pids: usize = stdout.lines().last().unwrap().trim().parse().unwrap();
        assert!(pids <= 4, "the sandbox sees {pids} processes: {stdout}");
        assert_eq!(
            std::fs::read_to_string(shown.path().join("out")).unwrap(),
            "ok\n"
        );
    }

    #[test]
    fn a_runtime_directory_holding_the_data_dir_is_not_shown() {
        let data = tempfile::tempdir().unwrap();
        let inner = data.path().join("berth");
        let path = std::env::var("PATH").ok();
        let Ok(isolation) =
            Isolation::detect(path.as_deref(), &[data.path().to_path_buf()], &[&inner])
        else {
            return;
        };
        assert!(
            !isolation
                .system
                .contains(&Entry::ReadOnly(data.path().canonicalize().unwrap()))
        );
    }
}
