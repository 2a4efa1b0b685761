//! Stdin and stdout for rmcp, with one addition: a line that is not JSON is
//! answered with a JSON-RPC parse error (rmcp alone would drop it silently).
//!
//! Both streams are polled by the async runtime itself
//! ([`crate::sys::stream`]): a request is read by the worker that handles
//! it, and its answer is written by the task that produced it, so neither
//! crosses a thread.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sys::stream::{Input, Output};

/// Bytes asked of stdin at a time.
const CHUNK: usize = 64 * 1024;

/// Answers queued beyond this wait for stdout before rmcp may queue more.
const QUEUE_LIMIT: usize = 4 << 20;

/// The stream rmcp reads: the lines of stdin that are JSON.
pub struct Incoming {
    input: Input,
    /// Bytes read from stdin; `read[start..]` is not yet sorted into lines.
    read: Vec<u8>,
    start: usize,
    /// `read[start..scanned]` holds no line break.
    scanned: usize,
    /// The line rmcp is reading, and how much of it it has.
    line: Vec<u8>,
    at: usize,
    ended: bool,
    /// A parse error of ours is queued and stdout did not take it yet.
    answering: bool,
    writer: Arc<Writer>,
}

/// The stream rmcp writes.
pub struct Outgoing {
    writer: Arc<Writer>,
}

/// Waits until what rmcp wrote has left, so the last answer is not lost
/// when berth exits.
pub struct Drain {
    writer: Arc<Writer>,
}

impl Drain {
    /// Wait, at most `limit`, until everything queued is on stdout.
    pub async fn wait(&self, limit: Duration) {
        let _ =
            tokio::time::timeout(limit, std::future::poll_fn(|cx| self.writer.poll_send(cx))).await;
    }
}

/// rmcp's stdin and stdout, and the [`Drain`] for the second. Needs a
/// tokio runtime.
pub fn pipes() -> ((Incoming, Outgoing), Drain) {
    let input = Input::stdin();
    let output = Output::stdout();
    tracing::debug!(stdin = ?input.mode(), stdout = ?output.mode(), "stdio streams");
    let waiting = Arc::new(Waiting::default());
    let writer = Arc::new(Writer {
        state: Mutex::new(Queue {
            output,
            bytes: Vec::new(),
            sent: 0,
            mid_line: false,
            held: Vec::new(),
        }),
        wake_all: Waker::from(waiting.clone()),
        waiting,
    });
    let incoming = Incoming {
        input,
        read: Vec::new(),
        start: 0,
        scanned: 0,
        line: Vec::new(),
        at: 0,
        ended: false,
        answering: false,
        writer: writer.clone(),
    };
    let drain = Drain {
        writer: writer.clone(),
    };
    ((incoming, Outgoing { writer }), drain)
}

/// Stdout, shared by rmcp's answers and our parse errors.
struct Writer {
    state: Mutex<Queue>,
    /// Tasks waiting for the queue to empty.
    waiting: Arc<Waiting>,
    /// The waker the stream is polled with: it wakes every waiting task,
    /// since the stream remembers only the last waker it saw, and the task
    /// that polled last may never poll again (rmcp stops reading at the
    /// end of input while its answers are still being written).
    wake_all: Waker,
}

/// Tasks to wake when stdout can take more.
#[derive(Default)]
struct Waiting(Mutex<Vec<Waker>>);

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, Vec<Waker>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, waker: &Waker) {
        let mut waiting = self.lock();
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }

    /// Wake every waiting task but `done`.
    fn wake_others(&self, done: &Waker) {
        let waiting = std::mem::take(&mut *self.lock());
        for waker in waiting {
            if !waker.will_wake(done) {
                waker.wake();
            }
        }
    }
}

impl Wake for Waiting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = std::mem::take(&mut *self.lock());
        for waker in waiting {
            waker.wake();
        }
    }
}

/// What waits to be written, in order.
struct Queue {
    output: Output,
    bytes: Vec<u8>,
    /// `bytes[..sent]` is already written.
    sent: usize,
    /// rmcp's last bytes ended inside a line: our own lines wait.
    mid_line: bool,
    /// Our lines waiting for rmcp's line to end.
    held: Vec<String>,
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue bytes rmcp wrote (they may end mid-line), unless more than
    /// [`QUEUE_LIMIT`] already waits for stdout.
    fn try_queue_rmcp(&self, bytes: &[u8]) -> bool {
        let mut queue = self.lock();
        if queue.bytes.len() - queue.sent > QUEUE_LIMIT {
            return false;
        }
        queue.bytes.extend_from_slice(bytes);
        queue.mid_line = !bytes.ends_with(b"\n");
        if !queue.mid_line {
            let held = std::mem::take(&mut queue.held);
            for line in held {
                queue.push_line(&line);
            }
        }
        true
    }

    /// Queue one whole line of our own, between rmcp's lines.
    fn queue_line(&self, line: String) {
        let mut queue = self.lock();
        if queue.mid_line {
            queue.held.push(line);
        } else {
            queue.push_line(&line);
        }
    }

    /// Write until the queue is empty.
    fn poll_send(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Registered before the stream is polled, which may wake at once.
        self.waiting.add(cx.waker());
        let mut stream = Context::from_waker(&self.wake_all);
        let mut queue = self.lock();
        let queue = &mut *queue;
        while queue.sent < queue.bytes.len() {
            match queue
                .output
                .poll_write(&mut stream, &queue.bytes[queue.sent..])
            {
                Poll::Ready(Ok(0)) => {
                    self.waiting.wake_others(cx.waker());
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => queue.sent += n,
                Poll::Ready(Err(err)) => {
                    self.waiting.wake_others(cx.waker());
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        queue.bytes.clear();
        queue.sent = 0;
        let flushed = ready!(queue.output.poll_flush(&mut stream));
        self.waiting.wake_others(cx.waker());
        Poll::Ready(flushed)
    }
}

impl Queue {
    fn push_line(&mut self, line: &str) {
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
    }
}

impl Incoming {
    /// The next non-blank line already read, with its line break.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let end = match self.read[self.scanned..].iter().position(|&b| b == b'\n') {
                Some(i) => self.scanned + i + 1,
                // The last line of input may lack its line break.
                None if self.ended && self.start < self.read.len() => self.read.len(),
                None => {
                    self.scanned = self.read.len();
                    self.read.drain(..self.start);
                    self.scanned -= self.start;
                    self.start = 0;
                    return None;
                }
            };
            let mut line = self.read[self.start..end].to_vec();
            self.start = end;
            self.scanned = end;
            if line.trim_ascii().is_empty() {
                continue;
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            return Some(line);
        }
    }

    /// Read more of stdin; `Ready` once something arrived or input ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let filled = self.read.len();
        self.read.resize(filled + CHUNK, 0);
        let read = self.input.poll_read(cx, &mut self.read[filled..]);
        let n = match read {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => 0,
            Poll::Ready(Err(err)) => {
                tracing::warn!("reading stdin failed, ending the session: {err}");
                self.ended = true;
                0
            }
            Poll::Pending => {
                self.read.truncate(filled);
                return Poll::Pending;
            }
        };
        self.read.truncate(filled + n);
        if n == 0 {
            self.ended = true;
        }
        Poll::Ready(())
    }
}

impl AsyncRead for Incoming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.answering {
            this.answering = this.writer.poll_send(cx).is_pending();
        }
        loop {
            if this.at < this.line.len() {
                let n = (this.line.len() - this.at).min(buf.remaining());
                buf.put_slice(&this.line[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(line) = this.next_line() {
                match super::transport::check_json(&line) {
                    Ok(()) => {
                        this.line = line;
                        this.at = 0;
                    }
                    Err(err) => {
                        this.writer.queue_line(super::transport::parse_error(&err));
                        // Written now if stdout takes it; otherwise this task
                        // is woken to try again.
                        this.answering = this.writer.poll_send(cx).is_pending();
                    }
                }
                continue;
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_fill(cx));
        }
    }
}

impl AsyncWrite for Outgoing {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        while !self.writer.try_queue_rmcp(buf) {
            ready!(self.writer.poll_send(cx))?;
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.writer.poll_send(cx)
    }
}
