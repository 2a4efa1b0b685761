//! One process, run to completion in its own process group: cleared
//! environment, capped output, a timeout that kills the whole group, and no
//! child left behind when it ends.

mod env;
mod forked;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub use self::env::{ProcessConfig, base_env, is_forbidden_env, resolve_program};
pub use self::forked::run_forked;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Resolved program path.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Bytes for standard input; it is closed after them (or at once).
    pub stdin: Option<Vec<u8>>,
    /// Time limit.
    pub timeout: Duration,
    /// Cap on each of stdout and stderr.
    pub max_output: usize,
    /// Receives each line of output while the process runs, for live
    /// progress; `None` when nobody watches.
    pub lines: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The control group the process starts in, for memory and process
    /// limits; `None` when the host cannot create one.
    pub cgroup: Option<std::sync::Arc<super::cgroup::CallGroup>>,
    /// Resource limits set on the process before it starts.
    pub rlimits: Option<super::rlimits::Rlimits>,
}

/// What a process produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessResult {
    /// Exit code, absent when killed by a signal.
    pub exit_code: Option<i32>,
    /// Standard output, at most the cap.
    pub stdout: Vec<u8>,
    /// Standard error, at most the cap.
    pub stderr: Vec<u8>,
    /// Whether either stream was cut at the cap.
    pub truncated: bool,
    /// Whether the process was killed at its timeout.
    pub timed_out: bool,
    /// Whether it was killed because the caller cancelled.
    pub cancelled: bool,
    /// How long it ran.
    pub duration: Duration,
    /// Whether a fork server started it rather than a fresh process.
    pub forked: bool,
}

impl From<ProcessResult> for crate::contract::bindings::types::ProcessOutput {
    fn from(result: ProcessResult) -> Self {
        Self {
            exit_code: result.exit_code,
            stdout: result.stdout,
            stderr: result.stderr,
            truncated: result.truncated,
            timed_out: result.timed_out,
        }
    }
}

/// Run `spec` to completion, or until its timeout or `cancel`.
pub async fn run(spec: ProcessSpec, cancel: CancellationToken) -> std::io::Result<ProcessResult> {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let group = spec.cgroup.clone();
    let rlimits = spec.rlimits;
    if group.is_some() || rlimits.is_some() {
        // SAFETY: the hook only calls open/write/close and setrlimit, which
        // are async-signal-safe, on paths prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                if let Some(group) = &group {
                    group.join_self()?;
                }
                rlimits.as_ref().map_or(Ok(()), |r| r.apply_to_self())
            });
        }
    }
    let mut child = command.spawn()?;
    let running = Running {
        pgid: child.id().map(|id| id as i32),
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        exit: async move { child.wait().await.map(|status| status.code()) },
    };
    supervise(running, spec, cancel, started, false).await
}

/// A started process tree: its group, its pipes, and how it exits.
struct Running<I, O, E, F> {
    pgid: Option<i32>,
    stdin: Option<I>,
    stdout: Option<O>,
    stderr: Option<E>,
    /// Resolves to the exit code (none when killed by a signal).
    exit: F,
}

/// Feed, read and wait for `running` until it exits, times out or is
/// cancelled; then kill whatever is left of its group and cgroup.
async fn supervise<I, O, E, F>(
    running: Running<I, O, E, F>,
    spec: ProcessSpec,
    cancel: CancellationToken,
    started: Instant,
    forked: bool,
) -> std::io::Result<ProcessResult>
where
    I: AsyncWrite + Unpin + Send + 'static,
    O: AsyncRead + Unpin + Send + 'static,
    E: AsyncRead + Unpin + Send + 'static,
    F: Future<Output = std::io::Result<Option<i32>>>,
{
    let pgid = running.pgid;
    // Kills the group if this future is dropped mid-run (e.g. a wall timeout
    // around the whole plugin call), so no process outlives its call.
    let _group_guard = GroupGuard(pgid);

    let stdin_task = running.stdin.zip(spec.stdin).map(|(mut pipe, bytes)| {
        tokio::spawn(async move {
            // A process that exits without reading stdin makes this fail; that is fine.
            let _ = pipe.write_all(&bytes).await;
        })
    });
    let stdout = tokio::spawn(read_capped(
        running.stdout,
        spec.max_output,
        spec.lines.clone(),
    ));
    let stderr = tokio::spawn(read_capped(
        running.stderr,
        spec.max_output,
        spec.lines.clone(),
    ));

    let mut exit = std::pin::pin!(running.exit);
    let (code, timed_out, cancelled) = tokio::select! {
        code = &mut exit => (Some(code?), false, false),
        _ = tokio::time::sleep(spec.timeout) => (None, true, false),
        _ = cancel.cancelled() => (None, false, true),
    };
    // Whether the leader exited or not, nothing of its group may survive it:
    // a background child would otherwise hold the pipes open.
    kill_group(pgid);
    if let Some(group) = &spec.cgroup {
        // Members that left the process group (setsid) are still in the cgroup.
        group.kill_all();
    }
    let exit_code = match code {
        Some(code) => code,
        None => exit.await?,
    };
    if let Some(task) = stdin_task {
        task.abort();
    }
    let (stdout, out_cut) = stdout.await.unwrap_or_default();
    let (stderr, err_cut) = stderr.await.unwrap_or_default();
    Ok(ProcessResult {
        exit_code: if timed_out || cancelled {
            None
        } else {
            exit_code
        },
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        timed_out,
        cancelled,
        duration: started.elapsed(),
        forked,
    })
}

struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|p| *p > 0) {
        // SAFETY: killpg only sends a signal; a stale group id yields ESRCH.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Longest line forwarded to a watcher; longer ones are cut.
const MAX_WATCHED_LINE: usize = 500;

/// Read a stream to its end, keeping at most `cap` bytes; the rest is
/// drained so the writer never blocks. Complete lines within the cap also
/// go to `lines`.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    cap: usize,
    lines: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut line_start = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
                if let Some(tx) = &lines {
                    while let Some(end) = kept[line_start..].iter().position(|b| *b == b'\n') {
                        let line = &kept[line_start..line_start + end];
                        let text =
                            String::from_utf8_lossy(&line[..line.len().min(MAX_WATCHED_LINE)]);
                        let _ = tx.send(text.trim_end().to_string());
                        line_start += end + 1;
                    }
                }
            }
        }
    }
    (kept, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64, max_output: usize) -> ProcessSpec {
        ProcessSpec {
            program: resolve_program("sh", Some("/usr/bin:/bin")).unwrap(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: std::env::temp_dir(),
            stdin: None,
            timeout: Duration::from_millis(timeout_ms),
            max_output,
            lines: None,
            cgroup: None,
            rlimits: None,
        }
    }

    #[tokio::test]
    async fn lines_are_streamed_while_the_process_runs() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut spec = sh("echo one; echo two >&2; printf tail", 5_000, 1024);
        spec.lines = Some(tx);
        run(spec, CancellationToken::new()).await.unwrap();
        let mut seen = Vec::new();
        while let Ok(line) = rx.try_recv() {
            seen.push(line);
        }
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
    }

    #[tokio::test]
    async fn captures_exit_code_and_both_streams() {
        let out = run(
            sh("echo out; echo err >&2; exit 3", 5_000, 1024),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated && !out.timed_out);
    }

    #[tokio::test]
    async fn environment_is_cleared() {
        let out = run(sh("env", 5_000, 4096), CancellationToken::new())
            .await
            .unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        assert!(
            env.lines().all(|l| l.starts_with("PATH=")
                || l.starts_with("PWD=")
                || l.starts_with("SHLVL=")
                || l.starts_with('_')),
            "{env}"
        );
    }

    #[tokio::test]
    async fn output_is_capped_and_reported() {
        let out = run(
            sh("yes | head -c 100000", 5_000, 1000),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        let script = format!(
            "(sleep 30; echo late > {}) & sleep 30",
            marker.path().display()
        );
        let out = run(sh(&script, 300, 1024), CancellationToken::new())
            .await
            .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(out.duration < Duration::from_secs(10));
        let survivors = std::process::Command::new("pgrep")
            .args(["-f", "sleep 30"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&survivors.stdout).trim().is_empty(),
            "group members survived"
        );
    }

    #[tokio::test]
    async fn background_children_do_not_hold_the_call_open() {
        let out = run(
            sh("sleep 60 & echo started", 20_000, 1024),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, b"started\n");
        assert!(
            out.duration < Duration::from_secs(10),
            "waited for the background child: {:?}",
            out.duration
        );
    }

    #[tokio::test]
    async fn stdin_is_fed_and_closed() {
        let mut spec = sh("cat", 5_000, 1024);
        spec.stdin = Some(b"hello".to_vec());
        let out = run(spec, CancellationToken::new()).await.unwrap();
        assert_eq!(out.stdout, b"hello");
    }

    #[tokio::test]
    async fn cancellation_stops_the_process() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.cancel();
        });
        let out = run(sh("sleep 30", 20_000, 1024), cancel).await.unwrap();
        assert!(out.cancelled && !out.timed_out);
    }
}
