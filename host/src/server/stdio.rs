//! Stdin and stdout for rmcp, each driven by a thread of its own, with one
//! addition: a line that is not JSON is answered with a JSON-RPC parse
//! error (rmcp alone would drop it silently).
//!
//! Plain blocking threads, not tokio's stdio: tokio reads and writes a
//! standard stream on its blocking pool, a task hand-off for every read and
//! every write. Here a message crosses one thread boundary on the way in
//! and one on the way out.

use std::io::{BufRead, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// What the stdout thread writes.
enum Out {
    /// Bytes rmcp wrote, in order; they may end mid-line.
    Rmcp(Vec<u8>),
    /// One whole line of our own (a parse error), written only between
    /// rmcp's lines.
    Line(String),
    /// Answer once everything before is written and flushed.
    Flushed(std::sync::mpsc::SyncSender<()>),
}

/// The stream rmcp reads: the lines of stdin that are JSON.
pub struct Incoming {
    lines: UnboundedReceiver<Vec<u8>>,
    pending: Vec<u8>,
    at: usize,
}

/// The stream rmcp writes: handed to the stdout thread.
pub struct Outgoing {
    out: std::sync::mpsc::Sender<Out>,
}

/// Waits for the stdout thread, so the last answer leaves before berth
/// exits.
pub struct Drain {
    out: std::sync::mpsc::Sender<Out>,
}

impl Drain {
    /// Wait, at most `limit`, until everything rmcp wrote is on stdout.
    pub fn wait(&self, limit: std::time::Duration) {
        let (done, flushed) = std::sync::mpsc::sync_channel(1);
        if self.out.send(Out::Flushed(done)).is_ok() {
            let _ = flushed.recv_timeout(limit);
        }
    }
}

/// Start the stdin and stdout threads; rmcp reads the first and writes the
/// second, and the [`Drain`] waits for the second.
pub fn pipes() -> ((Incoming, Outgoing), Drain) {
    let (lines_tx, lines) = unbounded_channel();
    let (out, out_rx) = std::sync::mpsc::channel();
    let errors = out.clone();
    std::thread::Builder::new()
        .name("berth-stdin".into())
        .spawn(move || read_stdin(&lines_tx, &errors))
        .expect("spawning the stdin thread");
    std::thread::Builder::new()
        .name("berth-stdout".into())
        .spawn(move || write_stdout(&out_rx))
        .expect("spawning the stdout thread");
    let drain = Drain { out: out.clone() };
    (
        (
            Incoming {
                lines,
                pending: Vec::new(),
                at: 0,
            },
            Outgoing { out },
        ),
        drain,
    )
}

/// Forward every JSON line of stdin to rmcp; answer the others with a parse
/// error. Ends at the end of stdin, or when rmcp stops reading.
fn read_stdin(lines: &UnboundedSender<Vec<u8>>, errors: &std::sync::mpsc::Sender<Out>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not a String: a line that is not UTF-8 is one bad message
        // to answer, not the end of the session.
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        match super::transport::check_json(&line) {
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                if lines.send(line.clone()).is_err() {
                    return;
                }
            }
            Err(err) => {
                let _ = errors.send(Out::Line(super::transport::parse_error(&err)));
            }
        }
    }
}

/// Write what arrives to stdout, flushing whenever nothing more is queued;
/// our own lines wait until rmcp's output is at a line boundary.
fn write_stdout(out: &std::sync::mpsc::Receiver<Out>) {
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut at_boundary = true;
    let mut held: Vec<String> = Vec::new();
    while let Ok(first) = out.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            let written = match message {
                Out::Rmcp(bytes) => {
                    at_boundary = bytes.ends_with(b"\n");
                    stdout.write_all(&bytes)
                }
                Out::Line(line) => {
                    held.push(line);
                    Ok(())
                }
                Out::Flushed(done) => {
                    let flushed = stdout.flush();
                    let _ = done.send(());
                    flushed
                }
            };
            if written.is_err() {
                return;
            }
            if at_boundary {
                for line in held.drain(..) {
                    if writeln!(stdout, "{line}").is_err() {
                        return;
                    }
                }
            }
            next = out.try_recv().ok();
        }
        if stdout.flush().is_err() {
            return;
        }
    }
}

impl AsyncRead for Incoming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at == self.pending.len() {
            match self.lines.poll_recv(cx) {
                Poll::Ready(Some(line)) => {
                    self.pending = line;
                    self.at = 0;
                }
                // The end of stdin.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let this = &mut *self;
        let n = (this.pending.len() - this.at).min(buf.remaining());
        buf.put_slice(&this.pending[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Outgoing {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.out.send(Out::Rmcp(buf.to_vec())) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
