//! A connection's read buffer: bytes read and not used yet. It starts small and grows with
//! what arrives, up to a cap, so an idle or slow connection costs little.

use alloc::vec::Vec;
use embedded_io_async::Read;

/// The buffer's size before anything needs more.
const INITIAL: usize = 512;

/// Bytes read from a connection and not yet consumed (at most `cap`).
#[derive(Debug)]
pub struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    cap: usize,
}

/// What [`Input::fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Read this many bytes (more than 0).
    Read(usize),
    /// The stream ended.
    End,
    /// The buffer holds `cap` pending bytes: nothing was read.
    Full,
}

impl Input {
    /// An empty buffer that will hold at most `cap` bytes.
    pub fn new(cap: usize) -> Input {
        Input {
            buf: Vec::new(),
            start: 0,
            end: 0,
            cap: cap.max(1),
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

    /// Bytes of memory the buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Marks the first `n` pending bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more from `s` after the pending bytes (moving them to the front first).
    pub async fn fill<S: Read>(&mut self, s: &mut S) -> Result<Fill, S::Error> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.cap {
            return Ok(Fill::Full);
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).clamp(INITIAL, self.cap);
            self.buf.resize(grown, 0);
        }
        match s.read(&mut self.buf[self.end..]).await? {
            0 => Ok(Fill::End),
            n => {
                self.end += n;
                Ok(Fill::Read(n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;

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
        let mut f = core::pin::pin!(f);
        let w = core::task::Waker::noop();
        match f.as_mut().poll(&mut core::task::Context::from_waker(w)) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("the stream never waits"),
        }
    }

    #[test]
    fn fill_grows_to_the_cap_then_reports_full_and_the_end() {
        let mut s = Chunks(alloc::vec![&[7u8; 700][..]]);
        let mut i = Input::new(600);
        assert_eq!(i.capacity(), 0, "nothing allocated before a read");
        assert_eq!(run(i.fill(&mut s)), Ok(Fill::Read(512)));
        assert_eq!(run(i.fill(&mut s)), Ok(Fill::Read(88)));
        assert_eq!(i.capacity(), 600);
        assert_eq!(run(i.fill(&mut s)), Ok(Fill::Full));
        i.consume(590);
        assert_eq!(run(i.fill(&mut s)), Ok(Fill::Read(100)));
        assert_eq!(i.pending().len(), 110);
        i.consume(110);
        assert!(i.is_empty());
        assert_eq!(run(i.fill(&mut s)), Ok(Fill::End));
    }
}
