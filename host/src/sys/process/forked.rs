//! Runs started by a fork server: handing the request over, learning
//! which process forked it (and, for a confined run, that it really left
//! the server's namespaces), then supervising it like any other process.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio_util::sync::CancellationToken;

use super::{ProcessResult, ProcessSpec, Running, supervise};
use crate::sys::forkserver::{Confine, ForkServer, RunRequest};

/// Run `spec` through a fork server. The outer error means the run never
/// started (the server refused it or is gone), so it may be started
/// directly instead; the inner one is a failure after it started.
pub async fn run_forked(
    server: &ForkServer,
    spec: ProcessSpec,
    confine: Option<Confine<'_>>,
    cancel: CancellationToken,
) -> Result<std::io::Result<ProcessResult>, anyhow::Error> {
    let started = Instant::now();
    let (stdin_theirs, stdin_ours) = match spec.stdin {
        Some(_) => {
            let (read, write) = std::io::pipe().context("creating the stdin pipe")?;
            (OwnedFd::from(read), Some(OwnedFd::from(write)))
        }
        None => (
            OwnedFd::from(std::fs::File::open("/dev/null").context("opening /dev/null")?),
            None,
        ),
    };
    let (stdout_ours, stdout_theirs) = std::io::pipe().context("creating the stdout pipe")?;
    let (stderr_ours, stderr_theirs) = std::io::pipe().context("creating the stderr pipe")?;
    let argv = std::iter::once(spec.program.display().to_string())
        .chain(spec.args.iter().cloned())
        .collect();
    let report = server.send(RunRequest {
        argv,
        env: &spec.env,
        cwd: &spec.cwd,
        stdio: [stdin_theirs, stdout_theirs.into(), stderr_theirs.into()],
        confine,
    })?;
    report.set_nonblocking(true)?;
    let report = tokio::net::UnixStream::from_std(report)?;
    let pid = tokio::time::timeout(FORK_HANDSHAKE, forked_pid(&report))
        .await
        .context("the fork server did not fork the run in time")??;
    if confine.is_some() {
        // Dropping the report socket without `go` makes the forked process
        // exit before it runs anything.
        ensure_confined(pid)?;
    }
    let mut report = BufReader::new(report);
    if let Some(group) = &spec.cgroup {
        // Dropping the report socket without `go` makes the forked
        // process exit before it runs anything.
        group.add(pid)?;
    }
    report
        .get_mut()
        .write_all(b"go\n")
        .await
        .context("starting the forked run")?;
    let running = Running {
        pgid: Some(pid),
        stdin: stdin_ours.map(Sender::from_owned_fd).transpose()?,
        stdout: Some(Receiver::from_owned_fd(stdout_ours.into())?),
        stderr: Some(Receiver::from_owned_fd(stderr_ours.into())?),
        exit: async move {
            let mut status = String::new();
            report.read_line(&mut status).await?;
            Ok(status
                .strip_prefix("exit ")
                .and_then(|code| code.trim().parse().ok()))
        },
    };
    Ok(supervise(running, spec, cancel, started, true).await)
}

/// How long a fork server may take to fork a run.
const FORK_HANDSHAKE: Duration = Duration::from_secs(5);

/// Check that the process about to run a confined request has left its
/// server's user and mount namespaces, as the protocol asks: a server that
/// ignored the request would otherwise run it with every workspace in view.
/// (Its new pid namespace cannot be compared yet: the kernel shows none
/// until its first process exists.)
fn ensure_confined(pid: i32) -> anyhow::Result<()> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the forked process {pid}"))?;
    let parent = status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .map(str::trim)
        .context("the forked process has no parent")?;
    for ns in ["user", "mnt"] {
        let read = |pid: &str| {
            let link = format!("/proc/{pid}/ns/{ns}");
            std::fs::read_link(&link).with_context(|| format!("reading {link}"))
        };
        let own = read(&pid.to_string())?;
        let server = read(parent)?;
        anyhow::ensure!(
            own != server,
            "the fork server did not confine the run (it shares the server's {ns} namespace)"
        );
    }
    Ok(())
}

/// The pid of the process that forked a run, read from its `pid N` line.
/// The number is the one the kernel attaches to the line, as this host
/// sees it; the one written is the server's own view, which differs when
/// the server is in a pid namespace.
async fn forked_pid(report: &tokio::net::UnixStream) -> anyhow::Result<i32> {
    let (line, sender) = report
        .async_io(tokio::io::Interest::READABLE, || {
            let mut buf = [0u8; 256];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                report,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::DONTWAIT,
            )
            .map_err(std::io::Error::from)?;
            let sender = control.drain().find_map(|message| match message {
                RecvAncillaryMessage::ScmCredentials(cred) => Some(cred.pid.as_raw_nonzero().get()),
                _ => None,
            });
            Ok((
                String::from_utf8_lossy(&buf[..received.bytes]).into_owned(),
                sender,
            ))
        })
        .await?;
    anyhow::ensure!(
        line.starts_with("pid ") && line.ends_with('\n'),
        "the fork server answered {:?} instead of `pid N`",
        line.trim_end()
    );
    sender.context("the fork server's report came without the sender's credentials")
}
