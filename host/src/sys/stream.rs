//! Standard input and output driven by the async runtime's own event loop,
//! without touching the descriptors berth shares with its parent.
//!
//! Waiting for stdin on a thread of its own costs a cross-thread wake-up
//! for every message, and so does handing each answer to a writer thread;
//! on this path they were most of a trivial call's time. Polling the
//! streams needs them non-blocking, but setting `O_NONBLOCK` on fd 0 or 1
//! would change the open file description the client (or a shell) also
//! holds. So:
//!
//! - a pipe, FIFO or terminal is opened again through `/proc/self/fd`,
//!   which gives berth a description of its own to make non-blocking;
//! - a socket (libuv hands its children socket pairs) is read and written
//!   with `MSG_DONTWAIT`, leaving its flags alone;
//! - anything else (a regular file, `/dev/null`, or no `/proc`) goes through
//!   tokio's own stdin and stdout, which do each read and write on the
//!   blocking pool.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::net::{RecvFlags, SendFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a polled descriptor is read and written without blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polling {
    /// berth's own non-blocking description of a pipe, FIFO or terminal.
    Reopened,
    /// A socket shared with the parent; every call passes `MSG_DONTWAIT`.
    Socket,
}

/// Standard input, readable from an async task.
pub enum Input {
    /// Polled by the runtime's event loop.
    Polled(AsyncFd<OwnedFd>, Polling),
    /// Read on tokio's blocking pool.
    Pool(tokio::io::Stdin),
}

/// Standard output, writable from an async task.
pub enum Output {
    /// Polled by the runtime's event loop.
    Polled(AsyncFd<OwnedFd>, Polling),
    /// Written on tokio's blocking pool.
    Pool(tokio::io::Stdout),
}

impl Input {
    /// Standard input, polled when it can be. Needs a tokio runtime.
    pub fn stdin() -> Self {
        match polled(io::stdin().as_fd(), OFlags::RDONLY) {
            Some((fd, mode)) => Self::Polled(fd, mode),
            None => Self::Pool(tokio::io::stdin()),
        }
    }

    /// How this input is read: `Some` when the event loop polls it.
    pub fn mode(&self) -> Option<Polling> {
        match self {
            Self::Polled(_, mode) => Some(*mode),
            Self::Pool(_) => None,
        }
    }

    /// Read what is there into `buf`; 0 at the end of input.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Polled(fd, mode) => loop {
                let mut guard = ready!(fd.poll_read_ready(cx))?;
                let read = guard.try_io(|fd| match mode {
                    Polling::Reopened => rustix::io::read(fd, &mut *buf).map_err(io::Error::from),
                    Polling::Socket => rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT)
                        .map(|(n, _)| n)
                        .map_err(io::Error::from),
                });
                if let Ok(result) = read {
                    return Poll::Ready(result);
                }
            },
            Self::Pool(stdin) => {
                let mut read = ReadBuf::new(buf);
                ready!(Pin::new(stdin).poll_read(cx, &mut read))?;
                Poll::Ready(Ok(read.filled().len()))
            }
        }
    }
}

impl Output {
    /// Standard output, polled when it can be. Needs a tokio runtime.
    pub fn stdout() -> Self {
        match polled(io::stdout().as_fd(), OFlags::WRONLY) {
            Some((fd, mode)) => Self::Polled(fd, mode),
            None => Self::Pool(tokio::io::stdout()),
        }
    }

    /// How this output is written: `Some` when the event loop polls it.
    pub fn mode(&self) -> Option<Polling> {
        match self {
            Self::Polled(_, mode) => Some(*mode),
            Self::Pool(_) => None,
        }
    }

    /// Write a prefix of `buf`, as much as the stream takes now.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Self::Polled(fd, mode) => loop {
                let mut guard = ready!(fd.poll_write_ready(cx))?;
                let written = guard.try_io(|fd| match mode {
                    Polling::Reopened => rustix::io::write(fd, buf).map_err(io::Error::from),
                    Polling::Socket => {
                        rustix::net::send(fd, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)
                            .map_err(io::Error::from)
                    }
                });
                if let Ok(result) = written {
                    return Poll::Ready(result);
                }
            },
            Self::Pool(stdout) => Pin::new(stdout).poll_write(cx, buf),
        }
    }

    /// Wait until everything written has left for the stream.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Polled(..) => Poll::Ready(Ok(())),
            Self::Pool(stdout) => Pin::new(stdout).poll_flush(cx),
        }
    }
}

/// `stream` as a descriptor the event loop can poll, and how to use it;
/// `None` when it cannot be polled without changing the shared description.
fn polled(stream: BorrowedFd<'_>, access: OFlags) -> Option<(AsyncFd<OwnedFd>, Polling)> {
    let stat = rustix::fs::fstat(stream).ok()?;
    let (fd, mode) = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Socket => (stream.try_clone_to_owned().ok()?, Polling::Socket),
        FileType::Fifo | FileType::CharacterDevice => (reopen(stream, access)?, Polling::Reopened),
        _ => return None,
    };
    // A device the kernel cannot poll (`/dev/null`) is refused here.
    // SAFETY: the `OwnedFd` is moved in, so the descriptor stays open and
    // refers to the same description until the `AsyncFd` drops it.
    unsafe { AsyncFd::register(fd) }.ok().map(|fd| (fd, mode))
}

/// A new, non-blocking open file description of what `stream` refers to.
fn reopen(stream: BorrowedFd<'_>, access: OFlags) -> Option<OwnedFd> {
    let path = format!("/proc/self/fd/{}", stream.as_raw_fd());
    rustix::fs::open(
        path,
        access | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn flags(fd: BorrowedFd<'_>) -> OFlags {
        rustix::fs::fcntl_getfl(fd).unwrap()
    }

    #[tokio::test]
    async fn a_reopened_pipe_is_non_blocking_and_the_shared_end_is_left_alone() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (fd, mode) = polled(reader.as_fd(), OFlags::RDONLY).expect("a pipe is polled");
        assert_eq!(mode, Polling::Reopened);
        assert!(flags(fd.get_ref().as_fd()).contains(OFlags::NONBLOCK));
        assert!(!flags(reader.as_fd()).contains(OFlags::NONBLOCK));

        let mut input = Input::Polled(fd, mode);
        writer.write_all(b"hello\n").unwrap();
        let mut buf = [0u8; 16];
        let n = std::future::poll_fn(|cx| input.poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        drop(writer);
        let n = std::future::poll_fn(|cx| input.poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(n, 0, "the end of the pipe reads as the end of input");
    }

    #[tokio::test]
    async fn a_socket_is_shared_as_is_and_read_without_blocking() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (fd, mode) = polled(ours.as_fd(), OFlags::WRONLY).expect("a socket is polled");
        assert_eq!(mode, Polling::Socket);
        assert!(!flags(ours.as_fd()).contains(OFlags::NONBLOCK));

        let mut output = Output::Polled(fd, mode);
        let n = std::future::poll_fn(|cx| output.poll_write(cx, b"answer\n"))
            .await
            .unwrap();
        assert_eq!(n, 7);
        let mut got = [0u8; 7];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"answer\n");
    }

    #[tokio::test]
    async fn a_regular_file_is_not_polled() {
        let file = tempfile::tempfile().unwrap();
        assert!(polled(file.as_fd(), OFlags::RDONLY).is_none());
    }
}
