//! picoserve's socket and timer traits over xenia's: a [`Connection`] wraps an accepted
//! `xenia::net::TcpStream`, [`XeniaTimer`] sleeps on xenia's timers.
//!
//! picoserve splits a socket into a read half and a write half that live at the same time.
//! xenia's `TcpStream` reads and writes through `&mut self`, and its read, write and flush are
//! single `poll_fn`s over the smoltcp socket (no state kept between polls while no idle
//! timeout is set), so both halves share the stream in a `RefCell` and borrow it only inside
//! one poll: a borrow is never held across an `.await`, the halves can be used concurrently,
//! and no copy of the socket handle (which xenia keeps private) is needed.

use core::cell::RefCell;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::time::Duration;

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

/// An accepted connection, as a picoserve socket.
#[derive(Debug)]
pub struct Connection {
    stream: RefCell<TcpStream>,
}

impl Connection {
    /// Wraps `stream` (which must have no idle timeout set: see the module's docs).
    pub fn new(stream: TcpStream) -> Self {
        Connection {
            stream: RefCell::new(stream),
        }
    }
}

/// One half of a [`Connection`] (both halves read and write the same stream).
#[derive(Debug)]
pub struct Half<'a>(&'a RefCell<TcpStream>);

impl ErrorType for Half<'_> {
    type Error = IoError;
}

impl Read for Half<'_> {
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

impl picoserve::io::BaseWrite for Half<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        let cell = self.0;
        poll_fn(|cx| {
            let mut s = cell.borrow_mut();
            let polled = pin!(s.write(buf)).poll(cx);
            polled
        })
        .await
        .map_err(IoError)
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        let cell = self.0;
        poll_fn(|cx| {
            let mut s = cell.borrow_mut();
            let polled = pin!(s.flush()).poll(cx);
            polled
        })
        .await
        .map_err(IoError)
    }
}

/// How many bytes a `write_with` lends at most (formatted headers, small bodies); larger
/// bodies go through `write_all` straight from their own memory.
const LEND: usize = 1024;

impl picoserve::io::Write for Half<'_> {
    async fn write_with<F: FnOnce(picoserve::mem::BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, IoError> {
        let mut space = [0u8; LEND];
        let mut buffer = BorrowedBuffer::new(&mut space);
        let out = f(buffer.unfilled());
        let mut rest = buffer.filled();
        while !rest.is_empty() {
            let n = picoserve::io::BaseWrite::write(self, rest).await?;
            rest = &rest[n..];
        }
        Ok(out)
    }
}

impl picoserve::io::Socket<XeniaRuntime> for Connection {
    type Error = IoError;
    type ReadHalf<'a> = Half<'a>;
    type WriteHalf<'a> = Half<'a>;

    fn split(&mut self) -> (Half<'_>, Half<'_>) {
        (Half(&self.stream), Half(&self.stream))
    }

    async fn abort<T: picoserve::Timer<XeniaRuntime>>(
        self,
        _timeouts: &picoserve::Timeouts,
        _timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        self.stream.into_inner().abort();
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
