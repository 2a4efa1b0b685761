//! The processes an upstream connection runs: a local server (confined
//! like a snippet) or a backend's attach command, each in its own process
//! group that dies with the connection, its stderr going to berth's log.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::state::secrets::Redactor;
use crate::sys::isolation::Isolation;
use crate::sys::isolation::View;
use crate::sys::process::{ProcessConfig, base_env, is_forbidden_env, resolve_program};

/// Lines of a process's stderr kept to explain a failed start.
const STDERR_TAIL: usize = 20;

/// A started process group, killed when dropped.
pub struct ProcessGuard {
    child: tokio::process::Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ProcessGuard {
    /// The last lines it wrote to stderr, joined.
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The server may have started children of its own (npx starts
            // node); the whole group goes.
            // SAFETY: killpg has no memory effects; the group is the one
            // the child leads (process_group(0)).
            unsafe {
                libc::killpg(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// A started process and its MCP pipes.
pub struct Started {
    /// Kills the group when dropped.
    pub guard: ProcessGuard,
    /// What it writes (MCP messages).
    pub stdout: tokio::process::ChildStdout,
    /// What it reads.
    pub stdin: tokio::process::ChildStdin,
}

/// What a process is started with.
pub struct Launch<'a> {
    /// The server it is for (log lines name it).
    pub server: &'a str,
    /// Program and arguments.
    pub argv: &'a [String],
    /// Environment on top of `[process]`'s allow-list.
    pub env: &'a BTreeMap<String, String>,
    /// Its home and working directory, created if needed.
    pub home: PathBuf,
    /// `[process]`: the allow-list and fixed variables.
    pub process: &'a ProcessConfig,
    /// Confinement, when the process runs in a sandbox.
    pub confine: Option<(&'a Isolation, View)>,
    /// Secrets kept out of its log lines.
    pub redactor: Arc<Redactor>,
}

/// Start `launch` in its own process group, with stdin and stdout piped.
pub fn start(launch: Launch<'_>) -> anyhow::Result<Started> {
    let Launch {
        server,
        argv,
        env,
        home,
        process,
        confine,
        redactor,
    } = launch;
    let (first, rest) = argv.split_first().context("the command is empty")?;
    if let Some(key) = env.keys().find(|k| is_forbidden_env(k)) {
        anyhow::bail!("environment variable `{key}` may not be set for a server");
    }
    std::fs::create_dir_all(&home)
        .with_context(|| format!("creating the server's home {}", home.display()))?;
    let mut vars = base_env(process, &home);
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let program = resolve_program(first, path).with_context(|| {
        format!(
            "`{first}` is not an absolute path or a program on PATH ({})",
            path.unwrap_or("unset")
        )
    })?;
    let (program, args) = match confine {
        Some((isolation, mut view)) => {
            view.writable.push(home.clone());
            isolation.wrap(&program, rest, &home, &view, None)
        }
        None => (program, rest.to_vec()),
    };
    let mut child = tokio::process::Command::new(&program)
        .args(&args)
        .env_clear()
        .envs(vars)
        .current_dir(&home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(err) = child.stderr.take() {
        let tail = stderr.clone();
        let server = server.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = redactor.redact(&line);
                tracing::info!(target: "berth::upstream", server = %server, "{line}");
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    }
    let stdout = child.stdout.take().context("the server's stdout")?;
    let stdin = child.stdin.take().context("the server's stdin")?;
    Ok(Started {
        guard: ProcessGuard { child, stderr },
        stdout,
        stdin,
    })
}

/// `message`, followed by the process's last stderr lines when it wrote
/// any.
pub fn with_stderr(message: String, guard: &ProcessGuard) -> String {
    let tail = guard.stderr_tail();
    if tail.is_empty() {
        message
    } else {
        format!("{message}; its stderr ended with:\n{tail}")
    }
}
