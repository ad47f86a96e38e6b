//! A connection's read buffer: bytes read from the stream but not used yet, refilled as a
//! request head or body needs more. Shared by the http and kv examples.

use alloc::vec;
use alloc::vec::Vec;
use embedded_io_async::Read;

/// Bytes read from a connection and not yet consumed (at most `capacity`, so a request head
/// that does not fit is refused rather than buffered without bound).
pub struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    /// An empty buffer that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Input {
        Input {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// The bytes read and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks the first `n` pending bytes as used (`n` at most `pending().len()`).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more from `s`: `Ok(Some(0))` at the end of the stream, `Ok(None)` when the
    /// buffer is full (nothing was read).
    pub async fn fill<S: Read>(&mut self, s: &mut S) -> Result<Option<usize>, S::Error> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(None);
        }
        let n = s.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(Some(n))
    }

    /// Takes `len` bytes (pending ones first, then reading); `None` if the stream ends or
    /// fails first.
    pub async fn body<S: Read>(&mut self, s: &mut S, len: usize) -> Option<Vec<u8>> {
        let mut body = Vec::with_capacity(len);
        while body.len() < len {
            if !self.refill(s).await {
                return None;
            }
            let n = (len - body.len()).min(self.pending().len());
            body.extend_from_slice(&self.pending()[..n]);
            self.consume(n);
        }
        Some(body)
    }

    /// Drops `len` bytes (pending ones first, then reading); false if the stream ends or
    /// fails first.
    pub async fn skip<S: Read>(&mut self, s: &mut S, mut len: usize) -> bool {
        while len > 0 {
            if !self.refill(s).await {
                return false;
            }
            let n = len.min(self.pending().len());
            self.consume(n);
            len -= n;
        }
        true
    }

    /// Makes sure something is pending, reading if needed; false at the end of the stream
    /// or on an error.
    pub async fn refill<S: Read>(&mut self, s: &mut S) -> bool {
        if !self.is_empty() {
            return true;
        }
        matches!(self.fill(s).await, Ok(Some(n)) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;

    /// A stream that returns its chunks one per read, then the end.
    struct Chunks(Vec<&'static [u8]>);

    impl embedded_io_async::ErrorType for Chunks {
        type Error = Infallible;
    }

    impl Read for Chunks {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            if n < c.len() {
                self.0.insert(0, &c[n..]);
            }
            Ok(n)
        }
    }

    fn run<F: core::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the stream never waits")
    }

    #[test]
    fn body_spans_reads_and_keeps_what_follows() {
        let mut s = Chunks(vec![b"abc", b"defg", b"hi"]);
        let mut i = Input::new(4);
        assert_eq!(run(i.body(&mut s, 5)).as_deref(), Some(&b"abcde"[..]));
        assert_eq!(i.pending(), b"fg");
        assert!(run(i.skip(&mut s, 3)));
        assert_eq!(i.pending(), b"i");
        assert_eq!(
            run(i.body(&mut s, 2)),
            None,
            "the stream ended after one byte"
        );
    }

    #[test]
    fn fill_reports_a_full_buffer_and_the_end() {
        let mut s = Chunks(vec![b"abcdef"]);
        let mut i = Input::new(4);
        assert_eq!(run(i.fill(&mut s)), Ok(Some(4)));
        assert_eq!(run(i.fill(&mut s)), Ok(None));
        i.consume(3);
        assert_eq!(run(i.fill(&mut s)), Ok(Some(2)));
        assert_eq!(i.pending(), b"def");
        i.consume(3);
        assert_eq!(run(i.fill(&mut s)), Ok(Some(0)));
    }
}
