//! One-directional byte rings, as used by xenstore and the console.
//!
//! A byte ring is a data buffer whose size is a power of two plus two free-running `u32`
//! indices: the producer writes bytes at `prod & (size - 1)` and advances `prod`, the
//! consumer reads at `cons & (size - 1)` and advances `cons`. `prod - cons` (wrapping) is the
//! number of unread bytes and can never legitimately exceed `size`.

use core::fmt;
use core::ptr::{self, NonNull};
use core::sync::atomic::{fence, AtomicU32, Ordering};

use crate::RingError;

/// Checks shared by both ends' constructors.
fn check_layout(size: u32, indices: [NonNull<u32>; 2]) -> Result<(), RingError> {
    if !size.is_power_of_two() {
        return Err(RingError::BadSize { len: size as usize });
    }
    for p in indices {
        let addr = p.as_ptr() as usize;
        if !addr.is_multiple_of(4) {
            return Err(RingError::Misaligned { addr, align: 4 });
        }
    }
    Ok(())
}

/// View an index word in shared memory as an atomic.
///
/// # Safety
///
/// `p` must be 4-aligned and valid for reads and writes for `'a`, and accessed by this program
/// only through atomics.
unsafe fn atomic<'a>(p: NonNull<u32>) -> &'a AtomicU32 {
    // SAFETY: guaranteed by the caller.
    unsafe { AtomicU32::from_ptr(p.as_ptr()) }
}

/// The writing end of a byte ring: we own the producer index, the peer owns the consumer
/// index.
///
/// Our producer index is read from shared memory once, when the view is created, and then
/// kept privately (and published after each write), so a peer that scribbles over it cannot
/// confuse us. The peer's consumer index is re-read and validated by every operation.
///
/// # Example
///
/// ```
/// use core::ptr::NonNull;
/// use xenia_ring::{ByteRingConsumer, ByteRingProducer};
///
/// let mut buf = [0u8; 8];
/// let (mut cons, mut prod) = (0u32, 0u32);
/// let data = NonNull::from(&mut buf).cast::<u8>();
/// let (c, p) = (NonNull::from(&mut cons), NonNull::from(&mut prod));
/// // SAFETY: the buffer and indices outlive both ends and are only used through them.
/// let (mut tx, mut rx) = unsafe {
///     (
///         ByteRingProducer::new(data, 8, c, p).unwrap(),
///         ByteRingConsumer::new(data, 8, c, p).unwrap(),
///     )
/// };
/// assert_eq!(tx.write(b"hello, world"), Ok(8)); // as much as fits
/// let mut out = [0u8; 5];
/// assert_eq!(rx.read(&mut out), Ok(5));
/// assert_eq!(&out, b"hello");
/// assert_eq!(tx.write(b", world"), Ok(5));
/// let mut out = [0u8; 16];
/// assert_eq!(rx.read(&mut out), Ok(8));
/// assert_eq!(&out[..8], b", w, wor");
/// ```
pub struct ByteRingProducer {
    data: NonNull<u8>,
    size: u32,
    cons: NonNull<u32>,
    prod: NonNull<u32>,
    prod_pvt: u32,
}

// SAFETY: the view only holds addresses of shared memory that is accessed with volatile and
// atomic operations; nothing ties it to the thread that created it.
unsafe impl Send for ByteRingProducer {}

impl fmt::Debug for ByteRingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRingProducer")
            .field("data", &self.data)
            .field("size", &self.size)
            .field("prod_pvt", &self.prod_pvt)
            .finish()
    }
}

impl ByteRingProducer {
    /// The producer end of the byte ring with buffer `data` of `size` bytes, the peer's
    /// consumer index at `cons` and our producer index at `prod` (whose current value is
    /// taken over).
    ///
    /// # Errors
    ///
    /// [`RingError::BadSize`] if `size` is not a power of two, [`RingError::Misaligned`] if an
    /// index is not 4-aligned.
    ///
    /// # Safety
    ///
    /// `data` must be valid for reads and writes of `size` bytes, and `cons` and `prod` for
    /// reads and writes of a `u32` each, for as long as the returned value exists. The memory
    /// may be shared with another domain, but within this program it must not be accessed
    /// through Rust references while this value exists (only through raw pointers with
    /// volatile or atomic accesses, as the ring views do). The indices must not overlap the
    /// data buffer.
    pub unsafe fn new(
        data: NonNull<u8>,
        size: u32,
        cons: NonNull<u32>,
        prod: NonNull<u32>,
    ) -> Result<Self, RingError> {
        check_layout(size, [cons, prod])?;
        // SAFETY: `prod` is aligned (checked) and valid (caller).
        let prod_pvt = unsafe { atomic(prod) }.load(Ordering::Relaxed);
        Ok(ByteRingProducer {
            data,
            size,
            cons,
            prod,
            prod_pvt,
        })
    }

    /// Size of the data buffer in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Our producer index (total bytes written, wrapping).
    pub fn producer_index(&self) -> u32 {
        self.prod_pvt
    }

    /// Re-read our producer index from shared memory, after the ring was reset (xenstore
    /// reconnection).
    pub fn resync(&mut self) {
        self.prod_pvt = self.prod_atomic().load(Ordering::Relaxed);
    }

    fn cons_atomic(&self) -> &AtomicU32 {
        // SAFETY: aligned (checked in `new`), valid and atomics-only (contract of `new`).
        unsafe { atomic(self.cons) }
    }

    fn prod_atomic(&self) -> &AtomicU32 {
        // SAFETY: as in `cons_atomic`.
        unsafe { atomic(self.prod) }
    }

    /// Read and validate the peer's consumer index; return the number of unread bytes.
    fn used(&self) -> Result<u32, RingError> {
        let cons = self.cons_atomic().load(Ordering::Relaxed);
        let used = self.prod_pvt.wrapping_sub(cons);
        if used > self.size {
            return Err(RingError::ConsumerOverrun {
                producer: self.prod_pvt,
                consumer: cons,
                size: self.size,
            });
        }
        Ok(used)
    }

    /// Number of bytes written but not yet consumed by the peer.
    ///
    /// # Errors
    ///
    /// [`RingError::ConsumerOverrun`] if the peer's consumer index is not within `size` bytes
    /// behind our producer index.
    pub fn pending(&self) -> Result<u32, RingError> {
        self.used()
    }

    /// Number of bytes that can be written now.
    ///
    /// # Errors
    ///
    /// As [`pending`](Self::pending).
    pub fn space(&self) -> Result<u32, RingError> {
        Ok(self.size - self.used()?)
    }

    /// Write as much of `src` as fits and publish it; return the number of bytes written
    /// (0 if the ring is full).
    ///
    /// # Errors
    ///
    /// As [`pending`](Self::pending); nothing is written then.
    pub fn write(&mut self, src: &[u8]) -> Result<usize, RingError> {
        let space = (self.size - self.used()?) as usize;
        let n = space.min(src.len());
        if n == 0 {
            return Ok(0);
        }
        // The peer must have finished reading the old bytes before we overwrite them.
        fence(Ordering::Acquire);
        let mask = self.size - 1;
        let mut idx = self.prod_pvt;
        for &b in &src[..n] {
            // SAFETY: `idx & mask < size`, so the byte is inside the buffer (contract of `new`).
            unsafe { ptr::write_volatile(self.data.as_ptr().add((idx & mask) as usize), b) };
            idx = idx.wrapping_add(1);
        }
        // The data must be visible before the new producer index.
        fence(Ordering::Release);
        self.prod_pvt = idx;
        self.prod_atomic().store(idx, Ordering::Relaxed);
        Ok(n)
    }
}

/// The reading end of a byte ring: we own the consumer index, the peer owns the producer
/// index.
///
/// Our consumer index is read from shared memory once, when the view is created, and then
/// kept privately (and published after each read). The peer's producer index is re-read and
/// validated by every operation. See [`ByteRingProducer`] for an example.
pub struct ByteRingConsumer {
    data: NonNull<u8>,
    size: u32,
    cons: NonNull<u32>,
    prod: NonNull<u32>,
    cons_pvt: u32,
}

// SAFETY: as for `ByteRingProducer`.
unsafe impl Send for ByteRingConsumer {}

impl fmt::Debug for ByteRingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRingConsumer")
            .field("data", &self.data)
            .field("size", &self.size)
            .field("cons_pvt", &self.cons_pvt)
            .finish()
    }
}

impl ByteRingConsumer {
    /// The consumer end of the byte ring with buffer `data` of `size` bytes, our consumer
    /// index at `cons` (whose current value is taken over) and the peer's producer index at
    /// `prod`.
    ///
    /// # Errors
    ///
    /// [`RingError::BadSize`] if `size` is not a power of two, [`RingError::Misaligned`] if an
    /// index is not 4-aligned.
    ///
    /// # Safety
    ///
    /// As for [`ByteRingProducer::new`].
    pub unsafe fn new(
        data: NonNull<u8>,
        size: u32,
        cons: NonNull<u32>,
        prod: NonNull<u32>,
    ) -> Result<Self, RingError> {
        check_layout(size, [cons, prod])?;
        // SAFETY: `cons` is aligned (checked) and valid (caller).
        let cons_pvt = unsafe { atomic(cons) }.load(Ordering::Relaxed);
        Ok(ByteRingConsumer {
            data,
            size,
            cons,
            prod,
            cons_pvt,
        })
    }

    /// Size of the data buffer in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Our consumer index (total bytes read, wrapping).
    pub fn consumer_index(&self) -> u32 {
        self.cons_pvt
    }

    /// Re-read our consumer index from shared memory, after the ring was reset (xenstore
    /// reconnection).
    pub fn resync(&mut self) {
        self.cons_pvt = self.cons_atomic().load(Ordering::Relaxed);
    }

    fn cons_atomic(&self) -> &AtomicU32 {
        // SAFETY: aligned (checked in `new`), valid and atomics-only (contract of `new`).
        unsafe { atomic(self.cons) }
    }

    fn prod_atomic(&self) -> &AtomicU32 {
        // SAFETY: as in `cons_atomic`.
        unsafe { atomic(self.prod) }
    }

    /// Number of bytes available to read.
    ///
    /// # Errors
    ///
    /// [`RingError::ProducerOverrun`] if the peer's producer index is more than `size` bytes
    /// ahead of our consumer index (or behind it).
    pub fn available(&self) -> Result<u32, RingError> {
        let prod = self.prod_atomic().load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(self.cons_pvt);
        if avail > self.size {
            return Err(RingError::ProducerOverrun {
                producer: prod,
                consumer: self.cons_pvt,
                max_ahead: self.size,
            });
        }
        Ok(avail)
    }

    /// Copy up to `dst.len()` available bytes into `dst` without consuming them; return how
    /// many were copied.
    ///
    /// # Errors
    ///
    /// As [`available`](Self::available); nothing is copied then.
    pub fn peek(&self, dst: &mut [u8]) -> Result<usize, RingError> {
        let n = (self.available()? as usize).min(dst.len());
        if n == 0 {
            return Ok(0);
        }
        // Read the data only after reading the producer index.
        fence(Ordering::Acquire);
        let mask = self.size - 1;
        let mut idx = self.cons_pvt;
        for b in &mut dst[..n] {
            // SAFETY: `idx & mask < size`, so the byte is inside the buffer (contract of `new`).
            *b = unsafe { ptr::read_volatile(self.data.as_ptr().add((idx & mask) as usize)) };
            idx = idx.wrapping_add(1);
        }
        Ok(n)
    }

    /// Read up to `dst.len()` available bytes into `dst` and consume them; return how many
    /// were read (0 if the ring is empty).
    ///
    /// # Errors
    ///
    /// As [`available`](Self::available); nothing is read then.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<usize, RingError> {
        let n = self.peek(dst)?;
        if n == 0 {
            return Ok(0);
        }
        // We must be done reading the data before the peer may overwrite it.
        fence(Ordering::Release);
        self.cons_pvt = self.cons_pvt.wrapping_add(n as u32);
        self.cons_atomic().store(self.cons_pvt, Ordering::Relaxed);
        Ok(n)
    }
}
