//! Buffer sizes ([`NetfrontConfig`]) and counters ([`NetStats`]).

use crate::{NetfrontError, RX_RING_SIZE, TX_RING_SIZE};

/// Sizes of a [`Netfront`](crate::Netfront)'s buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetfrontConfig {
    /// Receive pages posted to the backend (1 ..= 256).
    pub rx_buffers: usize,
    /// Transmit pages (1 ..= 256): how many pages of frames can be in flight.
    pub tx_buffers: usize,
    /// Received frames kept for the reader before we stop taking responses off the ring.
    pub rx_queue: usize,
    /// Use scatter-gather (frames larger than a page) when the backend offers it.
    pub sg: bool,
    /// Use TCP segmentation offload (send up to 64 KiB TCP/IPv4 super-frames that the
    /// backend segments, and complete TCP checksums in the backend) when the backend offers
    /// `feature-gso-tcpv4`, scatter-gather is on and `tx_buffers` hold a 64 KiB frame (16);
    /// and with scatter-gather and more than
    /// [`MAX_RX_SLOTS`](crate::MAX_RX_SLOTS) rx buffers, take GSO frames and partial
    /// checksums on receive (`feature-gso-tcpv4` = 1 from the frontend).
    pub gso: bool,
}

impl Default for NetfrontConfig {
    fn default() -> Self {
        NetfrontConfig {
            rx_buffers: 128,
            tx_buffers: 64,
            rx_queue: 64,
            sg: true,
            gso: true,
        }
    }
}

impl NetfrontConfig {
    pub(crate) fn validate(&self) -> Result<(), NetfrontError> {
        if !(1..=RX_RING_SIZE).contains(&self.rx_buffers) {
            return Err(NetfrontError::BadConfig("rx_buffers"));
        }
        if !(1..=TX_RING_SIZE).contains(&self.tx_buffers) {
            return Err(NetfrontError::BadConfig("tx_buffers"));
        }
        if self.rx_queue == 0 {
            return Err(NetfrontError::BadConfig("rx_queue"));
        }
        Ok(())
    }
}

/// What the device did, and what it refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received and handed on.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames sent (handed to the backend).
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Of the frames sent, GSO super-frames (the backend segments them).
    pub tx_gso_frames: u64,
    /// Of the frames sent, ones whose TCP checksum the backend completes (`csum_blank`, not
    /// GSO).
    pub tx_csum_offload: u64,
    /// Tx ring slots used by the frames sent (data and extra-info slots).
    pub tx_slots: u64,
    /// Events sent to the backend for tx requests (it asked to be told).
    pub tx_notifications: u64,
    /// TCP frames sent without offload because their headers could not be offloaded
    /// (their TCP checksum is then not filled in).
    pub tx_offload_errors: u64,
    /// Rx responses whose id was not the one of their slot (each breaks the device).
    pub rx_bad_id: u64,
    /// Received frames dropped: a response's status was an error (`NETIF_RSP_ERROR` or
    /// `_DROPPED`; any other negative status breaks the device and is counted too).
    pub rx_bad_status: u64,
    /// Received frames dropped because they were empty, and rx responses whose offset +
    /// size lay beyond their page (each of those breaks the device).
    pub rx_bad_size: u64,
    /// Rx responses with flags we do not know (each breaks the device).
    pub rx_bad_flags: u64,
    /// Rx frames longer than [`MAX_RX_SLOTS`](crate::MAX_RX_SLOTS) slots or than the MTU
    /// allows (each breaks the device).
    pub rx_too_long: u64,
    /// Extra-info slots skipped.
    pub rx_extra_info: u64,
    /// Rx ring slots taken (data and extra-info slots).
    pub rx_slots: u64,
    /// Received GSO frames (a GSO extra-info slot came with them).
    pub rx_gso_frames: u64,
    /// Received frames flagged `NETRXF_csum_blank` whose TCP or UDP checksum we completed.
    pub rx_csum_completed: u64,
    /// Events sent to the backend after posting rx buffers (it asked to be told).
    pub rx_notifications: u64,
    /// Frames not sent: larger than the device can send.
    pub tx_too_big: u64,
    /// Frames not sent: no tx slot or page was free.
    pub tx_no_buffers: u64,
    /// Tx responses whose id was out of range or not outstanding (each breaks the device).
    pub tx_bad_id: u64,
    /// Tx responses whose status is not one the protocol defines for our requests (each
    /// breaks the device).
    pub tx_bad_status: u64,
    /// Tx responses reporting that the backend dropped or failed the frame.
    pub tx_errors: u64,
    /// Tx responses for a page the backend still had mapped: the page was held back until
    /// the backend unmapped it, so later frames could not be written under its feet.
    pub tx_still_mapped: u64,
    /// Ring protocol errors (each kills the ring it happened on).
    pub ring_errors: u64,
    /// Times the device was declared broken by a protocol violation (0 or 1).
    pub broken: u64,
    /// Feature keys the backend published with a value other than "0" or "1" (taken as off).
    pub bad_features: u64,
}
