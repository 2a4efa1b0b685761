//! Fork servers: long-lived processes a runner offers in its plan
//! (`run-plan.fork-server`) that start a run step by forking an interpreter
//! which has already loaded the environment, instead of starting a fresh
//! one. berth keeps at most a configured number, one per language,
//! toolchain, environment and server command, stops them when idle, and
//! never depends on them: a run that cannot go through one is started
//! directly, and nothing of it has run by then.
//!
//! This module holds the servers and speaks the host's side of the
//! protocol up to handing a run its descriptors; `process::run_forked`
//! supervises the run like any other process.

use std::collections::HashMap;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::cgroup::CallGroup;
use super::envcache::EnvLease;
use super::rlimits::Rlimits;

/// How long a server may take to preload its environment.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server that failed to start is not tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// Largest run request sent to a server; a larger one runs directly.
const MAX_REQUEST: usize = 128 << 10;

/// What to start a server as: its command with placeholders filled in.
#[derive(Debug)]
pub struct Launch {
    /// Resolved program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Keeps the server's environment from being evicted while it runs.
    pub lease: Option<EnvLease>,
    /// The group the server itself runs in, with the run limits.
    pub cgroup: Option<CallGroup>,
    /// Resource limits of the server and so of every run it forks.
    pub rlimits: Option<Rlimits>,
}

/// One run handed to a server.
pub struct RunRequest<'a> {
    /// Resolved program and arguments.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: &'a [(String, String)],
    /// Working directory.
    pub cwd: &'a std::path::Path,
    /// The run's standard input, output and error.
    pub stdio: [OwnedFd; 3],
    /// What the run must confine itself to, when the server is isolated.
    pub confine: Option<Confine<'a>>,
}

/// How a run forked by an isolated server confines itself before anything
/// of it runs: in user, mount and pid namespaces of its own, where every
/// directory of `hide` is replaced by an empty one, except `keep` (its own
/// workspace), so that runs of one server cannot see each other's files.
#[derive(Debug, Clone, Copy)]
pub struct Confine<'a> {
    /// Directories holding other runs' workspaces.
    pub hide: &'a [PathBuf],
    /// The run's own workspace.
    pub keep: &'a std::path::Path,
}

enum Slot {
    Starting,
    Ready(Arc<ForkServer>),
    Failed(Instant),
}

/// The fork servers of one host.
pub struct ForkServers {
    slots: Mutex<HashMap<String, Slot>>,
    max: usize,
    idle: Duration,
    active: AtomicBool,
}

/// A running, ready server.
pub struct ForkServer {
    program: PathBuf,
    control: OwnedFd,
    process: Mutex<tokio::process::Child>,
    last_used: Mutex<Instant>,
    _lease: Option<EnvLease>,
    _cgroup: Option<CallGroup>,
}

impl ForkServers {
    /// At most `max` servers (none when 0), each stopped after `idle`
    /// without a run.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max,
            idle,
            active: AtomicBool::new(false),
        }
    }

    /// Start servers from now on. Only a serving berth does: a one-off
    /// call would pay for a server that nothing uses.
    pub fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }

    /// Whether servers are started at all.
    pub fn enabled(&self) -> bool {
        self.max > 0 && self.active.load(Ordering::SeqCst)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ready server for `key`, if there is one and it is alive.
    pub fn ready(&self, key: &str) -> Option<Arc<ForkServer>> {
        let mut slots = self.slots();
        let server = match slots.get(key) {
            Some(Slot::Ready(server)) => server.clone(),
            _ => return None,
        };
        if !server.alive() {
            tracing::warn!(
                key,
                "a fork server exited; runs start directly until it is restarted"
            );
            slots.remove(key);
            return None;
        }
        *server.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Some(server)
    }

    /// Whether a server for `key` should be started now: none is ready or
    /// starting, and the last attempt did not fail recently.
    pub fn wanted(&self, key: &str) -> bool {
        if !self.enabled() {
            return false;
        }
        match self.slots().get(key) {
            None => true,
            Some(Slot::Failed(at)) => at.elapsed() > RETRY_AFTER,
            Some(_) => false,
        }
    }

    /// Start a server for `key` in the background; runs use it once it is
    /// ready. Idle servers, and the least recently used beyond the cap, are
    /// stopped first.
    pub fn start(self: &Arc<Self>, key: String, launch: Launch) {
        {
            let mut slots = self.slots();
            if !matches!(slots.get(&key), None | Some(Slot::Failed(_))) {
                return;
            }
            slots.insert(key.clone(), Slot::Starting);
        }
        self.sweep();
        let servers = self.clone();
        tokio::spawn(async move {
            let slot = match ForkServer::spawn(launch).await {
                Ok(server) => {
                    tracing::debug!(key, "fork server ready");
                    Slot::Ready(Arc::new(server))
                }
                Err(err) => {
                    tracing::warn!(
                        key,
                        "fork server did not start; runs start directly: {err:#}"
                    );
                    Slot::Failed(Instant::now())
                }
            };
            servers.slots().insert(key, slot);
        });
    }

    /// Stop servers idle too long, then the least recently used beyond
    /// the cap (a starting server counts against it).
    pub fn sweep(&self) {
        let mut slots = self.slots();
        slots.retain(|_, slot| match slot {
            Slot::Ready(server) => server.idle_for() < self.idle && server.alive(),
            Slot::Starting => true,
            Slot::Failed(at) => at.elapsed() < RETRY_AFTER,
        });
        let live = |slots: &HashMap<String, Slot>| {
            slots
                .values()
                .filter(|s| !matches!(s, Slot::Failed(_)))
                .count()
        };
        while live(&slots) > self.max {
            let oldest = slots
                .iter()
                .filter_map(|(key, slot)| match slot {
                    Slot::Ready(server) => Some((key.clone(), server.idle_for())),
                    _ => None,
                })
                .max_by_key(|(_, idle)| *idle);
            match oldest {
                Some((key, _)) => {
                    slots.remove(&key);
                }
                None => break,
            }
        }
    }

    /// How many servers are ready now.
    pub fn ready_count(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| matches!(s, Slot::Ready(_)))
            .count()
    }
}

impl ForkServer {
    /// Start the server and wait until it says it is ready.
    async fn spawn(launch: Launch) -> anyhow::Result<Self> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .context("creating the control socket")?;
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&launch.cwd)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let procs = launch.cgroup.as_ref().map(|g| g.procs_files().to_vec());
        let rlimits = launch.rlimits;
        if procs.is_some() || rlimits.is_some() {
            // SAFETY: the hook only calls open/write/close and setrlimit,
            // which are async-signal-safe, on paths prepared before the fork.
            unsafe {
                command.pre_exec(move || {
                    if let Some(procs) = &procs {
                        super::cgroup::join(procs)?;
                    }
                    rlimits.as_ref().map_or(Ok(()), |r| r.apply_to_self())
                });
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.program.display()))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "berth::fork_server", "{line}");
                }
            });
        }
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut first = String::new();
        let mut reader = BufReader::new(stdout);
        match tokio::time::timeout(READY_TIMEOUT, reader.read_line(&mut first)).await {
            Ok(Ok(_)) if first == "ready\n" => {}
            Ok(Ok(0)) => anyhow::bail!("it exited before it was ready ({:?})", child.try_wait()?),
            Ok(Ok(_)) => anyhow::bail!("it said {first:?} instead of `ready`"),
            Ok(Err(err)) => return Err(err).context("reading its first line"),
            Err(_) => anyhow::bail!("it was not ready within {READY_TIMEOUT:?}"),
        }
        Ok(Self {
            program: launch.program,
            control: ours,
            process: Mutex::new(child),
            last_used: Mutex::new(Instant::now()),
            _lease: launch.lease,
            _cgroup: launch.cgroup,
        })
    }

    fn alive(&self) -> bool {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        matches!(process.try_wait(), Ok(None))
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Hand `request` to the server and return berth's end of the run's
    /// report socket. Nothing of the run starts before the host answers
    /// `go` on it.
    pub fn send(&self, request: RunRequest<'_>) -> anyhow::Result<UnixStream> {
        let same_program = request
            .argv
            .first()
            .is_some_and(|p| std::path::Path::new(p) == self.program);
        let mut body = serde_json::json!({
            "argv": request.argv,
            "env": request.env,
            "cwd": request.cwd,
            "same-program": same_program,
        });
        if let Some(confine) = request.confine {
            body["confine"] = serde_json::json!({"hide": confine.hide, "keep": confine.keep});
        }
        let body = body.to_string();
        anyhow::ensure!(
            body.len() <= MAX_REQUEST,
            "the run request is {} bytes, more than a fork server takes",
            body.len()
        );
        let (ours, theirs) = UnixStream::pair().context("creating the report socket")?;
        // The kernel then tells which process wrote `pid N`, as this host
        // numbers it: a sandboxed server only knows its own namespace's.
        rustix::net::sockopt::set_socket_passcred(&ours, true)
            .context("asking for the reporter's credentials")?;
        let [stdin, stdout, stderr] = &request.stdio;
        let fds = [
            stdin.as_fd(),
            stdout.as_fd(),
            stderr.as_fd(),
            theirs.as_fd(),
        ];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        anyhow::ensure!(
            control.push(SendAncillaryMessage::ScmRights(&fds)),
            "no room for the run's descriptors"
        );
        // Never block an async thread on a busy server: such a run starts
        // directly instead.
        rustix::net::sendmsg(
            &self.control,
            &[IoSlice::new(body.as_bytes())],
            &mut control,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        )
        .context("sending the run to the fork server")?;
        Ok(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::process::{self, ProcessSpec};
    use tokio_util::sync::CancellationToken;

    /// The bundled Python runner's server: the one real implementation of
    /// the protocol, exercised here natively.
    const PYTHON_SERVER: &str = include_str!("../../../plugins/runners/python/src/fork_server.py");

    fn path_env() -> Vec<(String, String)> {
        vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
    }

    /// A ready Python fork server, or `None` (with the reason printed)
    /// when this machine has no python3.
    async fn python_server(dir: &std::path::Path) -> Option<(PathBuf, Arc<ForkServer>)> {
        python_server_from(dir, PYTHON_SERVER).await
    }

    /// A server running `source` (the bundled one, or a variant of it).
    async fn python_server_from(
        dir: &std::path::Path,
        source: &str,
    ) -> Option<(PathBuf, Arc<ForkServer>)> {
        let path = std::env::var("PATH").ok();
        let Some(python) = process::resolve_program("python3", path.as_deref()) else {
            eprintln!("SKIP: python3 is not on PATH");
            return None;
        };
        let servers = Arc::new(ForkServers::new(1, Duration::from_secs(60)));
        servers.start(
            "py".into(),
            Launch {
                program: python.clone(),
                args: vec!["-c".into(), source.into(), "json".into()],
                env: path_env(),
                cwd: dir.to_path_buf(),
                lease: None,
                cgroup: None,
                rlimits: None,
            },
        );
        for _ in 0..300 {
            if let Some(server) = servers.ready("py") {
                return Some((python, server));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the Python fork server did not become ready");
    }

    fn spec(program: &std::path::Path, args: &[&str], dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: path_env(),
            cwd: dir.to_path_buf(),
            stdin: None,
            timeout: Duration::from_secs(20),
            max_output: 4096,
            lines: None,
            cgroup: None,
            rlimits: None,
        }
    }

    /// Write `code` as `main.py` in `dir` and run it through `server` as
    /// `python main.py`, with `adjust` applied to the spec first.
    async fn run_script(
        server: &ForkServer,
        python: &std::path::Path,
        dir: &std::path::Path,
        code: &str,
        adjust: impl FnOnce(&mut ProcessSpec),
    ) -> process::ProcessResult {
        std::fs::write(dir.join("main.py"), code).unwrap();
        let mut spec = spec(python, &["main.py"], dir);
        adjust(&mut spec);
        process::run_forked(server, spec, None, CancellationToken::new())
            .await
            .expect("the server took the run")
            .expect("the run was supervised")
    }

    #[tokio::test]
    async fn a_forked_run_sees_its_own_argv_env_stdin_and_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let Some((python, server)) = python_server(dir.path()).await else {
            return;
        };
        let code = "import os, sys\nprint(__name__, sys.argv, os.environ['GREETING'], sys.stdin.read(), os.getcwd() == sys.path[0])\nprint('oops', file=sys.stderr)\nsys.exit(3)\n";
        let out = run_script(&server, &python, dir.path(), code, |spec| {
            spec.args.extend(["a b".into(), "c".into()]);
            spec.env.push(("GREETING".into(), "hi".into()));
            spec.stdin = Some(b"input".to_vec());
        })
        .await;
        assert!(out.forked);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "__main__ ['main.py', 'a b', 'c'] hi input True\n"
        );
        assert_eq!(out.stderr, b"oops\n");
        assert_eq!(out.exit_code, Some(3));
    }

    #[tokio::test]
    async fn a_forked_run_waits_for_its_threads_then_runs_atexit() {
        let dir = tempfile::tempdir().unwrap();
        let Some((python, server)) = python_server(dir.path()).await else {
            return;
        };
        let code = "import atexit, sys, threading, time\natexit.register(lambda: print('atexit'))\nthreading.Thread(target=lambda: (time.sleep(0.3), print('thread'))).start()\nprint('main')\nsys.exit('bye')\n";
        let out = run_script(&server, &python, dir.path(), code, |_| {}).await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "main\nthread\natexit\n"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "bye\n");
        assert_eq!(out.exit_code, Some(1));
    }

    #[tokio::test]
    async fn forked_runs_draw_different_random_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let Some((python, server)) = python_server(dir.path()).await else {
            return;
        };
        let numpy = std::process::Command::new(&python)
            .args(["-c", "import numpy"])
            .status()
            .is_ok_and(|s| s.success());
        let code = if numpy {
            "import random, numpy\nprint(random.random(), numpy.random.random())\n"
        } else {
            eprintln!("NOTE: numpy is not installed here; only the random module is checked");
            "import random\nprint(random.random())\n"
        };
        let first = run_script(&server, &python, dir.path(), code, |_| {}).await;
        let second = run_script(&server, &python, dir.path(), code, |_| {}).await;
        assert_eq!(first.exit_code, Some(0), "{first:?}");
        assert_ne!(
            first.stdout, second.stdout,
            "two runs drew the same numbers"
        );
    }

    #[tokio::test]
    async fn an_uncaught_exception_exits_1_with_only_the_snippets_frames() {
        let dir = tempfile::tempdir().unwrap();
        let Some((python, server)) = python_server(dir.path()).await else {
            return;
        };
        let code = "def f():\n    raise ValueError('bad')\nf()\n";
        let out = run_script(&server, &python, dir.path(), code, |_| {}).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.exit_code, Some(1));
        assert!(
            stderr.starts_with("Traceback (most recent call last):\n  File \""),
            "{stderr}"
        );
        assert!(
            stderr.contains("main.py\", line 3") && stderr.ends_with("ValueError: bad\n"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("<string>"),
            "server frames leaked: {stderr}"
        );
    }

    #[tokio::test]
    async fn another_program_is_executed_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let Some((_, server)) = python_server(dir.path()).await else {
            return;
        };
        let sh = process::resolve_program("sh", Some("/usr/bin:/bin")).unwrap();
        let out = process::run_forked(
            &server,
            spec(&sh, &["-c", "echo $0 $#; exit 7"], dir.path()),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{} 0\n", sh.display())
        );
        assert_eq!(out.exit_code, Some(7));
    }

    #[tokio::test]
    async fn a_forked_run_is_killed_with_its_children_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let Some((python, server)) = python_server(dir.path()).await else {
            return;
        };
        let code = "import os, subprocess\np = subprocess.Popen(['sleep', '60'])\nprint(os.getpid(), p.pid, flush=True)\nwhile True: pass\n";
        let out = run_script(&server, &python, dir.path(), code, |spec| {
            spec.timeout = Duration::from_millis(1500);
        })
        .await;
        assert!(out.timed_out && out.exit_code.is_none());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let pids: Vec<i32> = stdout
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 2, "{stdout}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        for pid in pids {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init to reap it: not running.
            assert!(
                state.is_empty() || state.contains(") Z "),
                "process {pid} survived: {state}"
            );
        }
        assert!(server.alive(), "the server died with its run");
    }

    #[test]
    fn servers_are_wanted_only_when_enabled_and_absent() {
        let off = ForkServers::new(0, Duration::from_secs(1));
        off.activate();
        assert!(!off.wanted("k"));
        let on = ForkServers::new(2, Duration::from_secs(1));
        assert!(!on.wanted("k"), "wanted before berth serves");
        on.activate();
        assert!(on.wanted("k"));
        on.slots().insert("k".into(), Slot::Starting);
        assert!(!on.wanted("k"));
        on.slots().insert("k".into(), Slot::Failed(Instant::now()));
        assert!(!on.wanted("k"), "a failed server is retried at once");
        assert!(on.ready("k").is_none());
    }

    /// Two workspaces under one root, each with a file of its own.
    fn two_workspaces() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let (mine, theirs) = (root.path().join("mine"), root.path().join("theirs"));
        for (dir, file) in [(&mine, "mine.txt"), (&theirs, "theirs.txt")] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join(file), "x").unwrap();
        }
        (root, mine, theirs)
    }

    #[tokio::test]
    async fn a_confined_run_sees_only_its_own_workspace_and_leads_its_pid_namespace() {
        let (root, mine, _) = two_workspaces();
        let Some((python, server)) = python_server(root.path()).await else {
            return;
        };
        std::fs::write(
            mine.join("main.py"),
            "import os\nprint(os.getpid(), sorted(os.listdir('..')), sorted(os.listdir('.')))",
        )
        .unwrap();
        let hide = [root.path().to_path_buf()];
        let confine = Confine {
            hide: &hide,
            keep: &mine,
        };
        let out = process::run_forked(
            &server,
            spec(&python, &["main.py"], &mine),
            Some(confine),
            CancellationToken::new(),
        )
        .await
        .expect("the server took the run")
        .expect("the run was supervised");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "1 ['mine'] ['main.py', 'mine.txt']\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn a_server_that_ignores_confinement_is_not_trusted_with_the_run() {
        let (root, mine, _) = two_workspaces();
        let unconfining = PYTHON_SERVER.replace("rules = request.get(\"confine\")", "rules = None");
        assert_ne!(unconfining, PYTHON_SERVER);
        let Some((python, server)) = python_server_from(root.path(), &unconfining).await else {
            return;
        };
        std::fs::write(mine.join("main.py"), "open('ran', 'w')").unwrap();
        let hide = [root.path().to_path_buf()];
        let refused = process::run_forked(
            &server,
            spec(&python, &["main.py"], &mine),
            Some(Confine {
                hide: &hide,
                keep: &mine,
            }),
            CancellationToken::new(),
        )
        .await;
        let err = refused.expect_err("an unconfined run was started");
        assert!(err.to_string().contains("did not confine"), "{err:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!mine.join("ran").exists(), "the refused run ran");
    }
}
