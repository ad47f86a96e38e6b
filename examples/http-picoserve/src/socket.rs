//! picoserve's socket and timer traits over xenia's: a [`Connection`] wraps an accepted
//! `xenia::net::TcpStream`, [`XeniaTimer`] sleeps on xenia's timers.
//!
//! picoserve splits a socket into a read half and a write half that live at the same time.
//! xenia's `TcpStream` reads and writes through `&mut self`, and its read, write and flush are
//! single `poll_fn`s over the smoltcp socket (no state kept between polls while no idle
//! timeout is set), so both halves share the stream in a `RefCell` and borrow it only inside
//! one poll: a borrow is never held across an `.await`, the halves can be used concurrently,
//! and no copy of the socket handle (which xenia keeps private) is needed. The write half
//! gathers writes in a small buffer (see [`WRITE_BUFFER`]).

use core::cell::RefCell;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::time::Duration;

use alloc::vec::Vec;

use picoserve::io::{ErrorKind, ErrorType, Read};
use picoserve::mem::BorrowedBuffer;
use xenia::net::{NetError, TcpStream};

/// The "runtime" picoserve's traits are parameterized by: xenia's executor.
#[derive(Debug)]
pub enum XeniaRuntime {}

/// picoserve's timer on xenia's timers (Xen system time).
#[derive(Debug, Clone, Copy, Default)]
pub struct XeniaTimer;

impl picoserve::Timer<XeniaRuntime> for XeniaTimer {
    fn delay(&self, duration: picoserve::time::Duration) -> impl Future<Output = ()> {
        xenia::sleep(Duration::from_millis(duration.as_millis()))
    }
}

/// A network error as picoserve's I/O traits want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError(pub NetError);

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl core::error::Error for IoError {}

impl picoserve::io::Error for IoError {
    fn kind(&self) -> ErrorKind {
        match self.0 {
            NetError::ConnectionReset => ErrorKind::ConnectionReset,
            NetError::ConnectionRefused => ErrorKind::ConnectionRefused,
            NetError::NotConnected => ErrorKind::NotConnected,
            NetError::IdleTimeout | NetError::Timeout(_) => ErrorKind::TimedOut,
            _ => ErrorKind::Other,
        }
    }
}

/// Bytes a connection's write half gathers before handing them to the stream: a response's
/// head (picoserve writes it a header at a time) and a small body leave in one segment instead
/// of several small ones (which smoltcp's Nagle rule would hold back for the client's delayed
/// ACK: 65 ms p50 under wrk in scripts/bench before this buffer).
pub const WRITE_BUFFER: usize = 1460;

/// How long an aborted connection's last response may take to be acknowledged before the
/// reset (xenia-http's `error_timeout` in the http example).
pub const ABORT_GRACE: picoserve::time::Duration = picoserve::time::Duration::from_secs(2);

/// An accepted connection, as a picoserve socket.
#[derive(Debug)]
pub struct Connection {
    stream: RefCell<TcpStream>,
    out: Vec<u8>,
}

impl Connection {
    /// Wraps `stream` (which must have no idle timeout set: see the module's docs).
    pub fn new(stream: TcpStream) -> Self {
        Connection {
            stream: RefCell::new(stream),
            out: Vec::with_capacity(WRITE_BUFFER),
        }
    }
}

/// The read half of a [`Connection`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a RefCell<TcpStream>);

/// The write half of a [`Connection`]: writes gather in [`WRITE_BUFFER`] bytes, handed to the
/// stream when it is full or on `flush`.
#[derive(Debug)]
pub struct WriteHalf<'a> {
    stream: &'a RefCell<TcpStream>,
    out: &'a mut Vec<u8>,
}

/// Writes all of `data` to the stream, borrowing it only within each poll.
async fn send_all(stream: &RefCell<TcpStream>, mut data: &[u8]) -> Result<(), IoError> {
    while !data.is_empty() {
        let n = poll_fn(|cx| {
            let mut s = stream.borrow_mut();
            let polled = pin!(s.write(data)).poll(cx);
            polled
        })
        .await
        .map_err(IoError)?;
        data = &data[n..];
    }
    Ok(())
}

impl WriteHalf<'_> {
    /// Sends what the buffer holds.
    async fn drain(&mut self) -> Result<(), IoError> {
        send_all(self.stream, self.out).await?;
        self.out.clear();
        Ok(())
    }
}

impl ErrorType for ReadHalf<'_> {
    type Error = IoError;
}

impl ErrorType for WriteHalf<'_> {
    type Error = IoError;
}

impl Read for ReadHalf<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let cell = self.0;
        poll_fn(|cx| {
            let mut s = cell.borrow_mut();
            let polled = pin!(s.read(buf)).poll(cx);
            polled
        })
        .await
        .map_err(IoError)
    }
}

impl picoserve::io::BaseWrite for WriteHalf<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        if self.out.len() + buf.len() > WRITE_BUFFER {
            self.drain().await?;
        }
        if buf.len() >= WRITE_BUFFER {
            // Large: straight from the caller's memory.
            send_all(self.stream, buf).await?;
        } else {
            self.out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        // Hands the buffer to the stream, which sends it; it does not wait for the client's
        // acknowledgement (`TcpStream::flush`): picoserve flushes after a response's head and
        // again after its body, and waiting there sent the head alone and waited for the
        // client's delayed ACK before the body (p50 106 ms against xenia-http's 40 ms in
        // scripts/bench). The socket's send buffer bounds what is in flight, picoserve's write
        // timeout bounds a client that stops reading, and `shutdown` waits for the
        // acknowledgement of everything.
        self.drain().await
    }
}

impl picoserve::io::Write for WriteHalf<'_> {
    async fn write_with<F: FnOnce(picoserve::mem::BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, IoError> {
        // Lend the buffer's free space (at least half of it).
        if self.out.len() > WRITE_BUFFER / 2 {
            self.drain().await?;
        }
        let used = self.out.len();
        self.out.resize(WRITE_BUFFER, 0);
        let mut buffer = BorrowedBuffer::new(&mut self.out[used..]);
        let r = f(buffer.unfilled());
        let filled = buffer.filled().len();
        self.out.truncate(used + filled);
        Ok(r)
    }
}

impl picoserve::io::Socket<XeniaRuntime> for Connection {
    type Error = IoError;
    type ReadHalf<'a> = ReadHalf<'a>;
    type WriteHalf<'a> = WriteHalf<'a>;

    fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf(&self.stream),
            WriteHalf {
                stream: &self.stream,
                out: &mut self.out,
            },
        )
    }

    async fn abort<T: picoserve::Timer<XeniaRuntime>>(
        self,
        _timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        // picoserve aborts after answering a request whose body it did not read (413, 503):
        // `flush` does not wait for the client, so give what was sent [`ABORT_GRACE`] to be
        // acknowledged first (nothing to wait for after a timeout or a read error), then reset.
        let mut stream = self.stream.into_inner();
        let _ = timer.run_with_timeout(ABORT_GRACE, stream.flush()).await;
        stream.abort();
        Ok(())
    }

    async fn shutdown<T: picoserve::Timer<XeniaRuntime>>(
        self,
        timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        // Send the FIN and wait (within the write timeout) for the data to be acknowledged;
        // the stack frees the socket once the connection has closed either way.
        match timer
            .run_with_timeout(timeouts.write, self.stream.into_inner().close())
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(picoserve::Error::Write(IoError(e))),
            Err(t) => Err(picoserve::Error::WriteTimeout(t)),
        }
    }
}
