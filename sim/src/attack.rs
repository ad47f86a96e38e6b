//! Host tests only: hostile traffic for a simulated vif. [`syn_frame`] builds one raw
//! Ethernet/IPv4/TCP SYN (any source address: nothing checks it), and [`SynFlood`] is a
//! backend that injects spoofed SYNs from off-link addresses at a steady rate of simulated
//! time, as a flood from dom0's side of the link would arrive. No handshake ever completes:
//! the guest's SYN-ACKs go to the router's MAC for addresses that do not exist.
//!
//! ```ignore
//! let flood = SynFlood::start(&sim, nb.clone(), SynFloodConfig { port: 80, ..cfg });
//! // ... run the guest ...
//! flood.stop();
//! eprintln!("{} SYNs sent", flood.sent());
//! ```

use crate::netback::Netback;
use crate::{Backend, Host, Sim};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

/// Where a SYN comes from and goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynSpec {
    /// Ethernet source (the router's MAC, for off-link sources).
    pub src_mac: [u8; 6],
    /// Ethernet destination (the guest's MAC).
    pub dst_mac: [u8; 6],
    /// IPv4 source (spoofed).
    pub src_ip: Ipv4Address,
    /// IPv4 destination (the guest).
    pub dst_ip: Ipv4Address,
    /// TCP source port.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// Initial sequence number.
    pub seq: u32,
}

/// One Ethernet frame holding an IPv4 TCP SYN as `spec` says, with valid checksums and an
/// MSS option (as real clients send).
pub fn syn_frame(spec: &SynSpec) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: spec.src_port,
        dst_port: spec.dst_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(spec.seq as i32),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: spec.src_ip,
        dst_addr: spec.dst_ip,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(spec.src_mac),
        dst_addr: EthernetAddress(spec.dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut tcpp = TcpPacket::new_unchecked(ipp.payload_mut());
    tcp.emit(
        &mut tcpp,
        &IpAddress::Ipv4(spec.src_ip),
        &IpAddress::Ipv4(spec.dst_ip),
        &caps,
    );
    buf
}

/// What a [`SynFlood`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynFloodConfig {
    /// The router's MAC (the frames' Ethernet source).
    pub src_mac: [u8; 6],
    /// The guest's MAC.
    pub dst_mac: [u8; 6],
    /// The guest's address.
    pub dst_ip: Ipv4Address,
    /// The port under attack.
    pub dst_port: u16,
    /// SYNs per second of simulated time.
    pub rate: u64,
    /// The most SYNs sent in all.
    pub total: u64,
    /// Seed of the source addresses, ports and sequence numbers.
    pub seed: u64,
}

struct FloodState {
    cfg: SynFloodConfig,
    start_ns: Option<u64>,
    sent: u64,
    stopped: bool,
    rng: u64,
}

/// A SYN flood in progress (a backend of the simulator; cheap to clone).
#[derive(Clone)]
pub struct SynFlood(Rc<RefCell<FloodState>>);

struct FloodBackend {
    nb: Netback,
    state: Rc<RefCell<FloodState>>,
}

impl SynFlood {
    /// Adds a flood to `sim`: from the next time the backends run, `cfg.rate` SYNs a second
    /// of simulated time go to the guest through `nb`, each from a random address of
    /// 198.18.0.0/15 (off-link, RFC 2544) and a random port, until `cfg.total` were sent or
    /// [`SynFlood::stop`].
    pub fn start(sim: &Sim, nb: Netback, cfg: SynFloodConfig) -> SynFlood {
        let state = Rc::new(RefCell::new(FloodState {
            cfg,
            start_ns: None,
            sent: 0,
            stopped: false,
            rng: cfg.seed | 1,
        }));
        sim.add_backend(Box::new(FloodBackend {
            nb,
            state: state.clone(),
        }));
        SynFlood(state)
    }

    /// SYNs sent so far.
    pub fn sent(&self) -> u64 {
        self.0.borrow().sent
    }

    /// Whether it has sent all it will.
    pub fn is_done(&self) -> bool {
        let s = self.0.borrow();
        s.stopped || s.sent >= s.cfg.total
    }

    /// Sends nothing more.
    pub fn stop(&self) {
        self.0.borrow_mut().stopped = true;
    }
}

fn next(rng: &mut u64) -> u64 {
    // xorshift64*
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Backend for FloodBackend {
    fn step(&mut self, host: &mut Host) -> bool {
        let mut s = self.state.borrow_mut();
        if s.stopped || s.sent >= s.cfg.total {
            return false;
        }
        let now = host.now_ns();
        let start = *s.start_ns.get_or_insert(now);
        let due = ((now - start) as u128 * s.cfg.rate as u128 / 1_000_000_000) as u64 + 1;
        let due = due.min(s.cfg.total);
        let mut any = false;
        while s.sent < due {
            let r = next(&mut s.rng);
            let spec = SynSpec {
                src_mac: s.cfg.src_mac,
                dst_mac: s.cfg.dst_mac,
                src_ip: Ipv4Address::new(198, 18 + (r >> 63) as u8, (r >> 8) as u8, r as u8),
                dst_ip: s.cfg.dst_ip,
                src_port: 1024 + ((r >> 16) as u16 % 60000),
                dst_port: s.cfg.dst_port,
                seq: (r >> 32) as u32,
            };
            self.nb.inject(&syn_frame(&spec));
            s.sent += 1;
            any = true;
        }
        any
    }
}
