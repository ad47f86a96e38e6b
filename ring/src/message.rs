//! The marker trait for plain-old-data ring entries.

/// Marker for plain-old-data ABI structs that may be copied into and out of shared memory.
///
/// Requests and responses of a [`FrontRing`](crate::FrontRing)/[`BackRing`](crate::BackRing)
/// must implement this trait. Typically these are `#[repr(C)]` structs mirroring a C header.
///
/// # Safety
///
/// Implementing this trait promises that the type:
///
/// * is valid for **every** bit pattern of its size: the peer can write anything into an
///   entry, and the bytes are copied out into a value of this type without further checks
///   (so no `bool`, `char`, enums, references, `NonZero*`, ...);
/// * has **no padding bytes**: values are copied into memory the peer can read, and padding
///   could carry stale, private data of this domain across (add explicit padding fields, as
///   the C headers do on 64-bit platforms);
/// * has no drop glue and owns nothing (it is `Copy`) and contains no pointers that would be
///   meaningful to the peer.
///
/// Unions of such types (the way `netif` mixes requests and "extra info" slots) qualify if
/// all their fields do and all fields have the same size.
///
/// # Example
///
/// ```
/// use xenia_ring::RingMessage;
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct EchoRequest {
///     id: u16,
///     _pad: u16,
///     value: u32,
/// }
///
/// // SAFETY: `#[repr(C)]`, only integer fields, no padding (2 + 2 + 4 bytes, align 4).
/// unsafe impl RingMessage for EchoRequest {}
/// ```
pub unsafe trait RingMessage: Copy + 'static {}

macro_rules! impl_ring_message {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: integers have no padding and every bit pattern is a valid value.
            unsafe impl RingMessage for $t {}
        )*
    };
}

impl_ring_message!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

// SAFETY: an array of padding-free, any-bit-pattern elements has no padding (arrays have no
// gaps between elements and the element size is a multiple of its alignment) and is valid for
// every bit pattern.
unsafe impl<T: RingMessage, const N: usize> RingMessage for [T; N] {}
