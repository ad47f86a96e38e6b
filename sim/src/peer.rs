//! Host tests only: dom0's end of a simulated vif as a smoltcp [`Device`], and a DHCP server
//! to put on it. The netfront, runtime and example tests run a smoltcp interface (or a DHCP
//! server) over [`Netback`]'s host side with these.

use crate::netback::{Netback, RxOffload};
use smoltcp::phy::{
    Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium, PacketMeta, RxToken,
    SegmentationCapabilities, TxToken,
};
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use std::vec;
use std::vec::Vec;

/// The peer host's MAC address ([`PeerDevice::interface`]).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// The peer host's IPv4 address ([`PeerDevice::interface`]).
pub const PEER_IP: smoltcp::wire::Ipv4Address = smoltcp::wire::Ipv4Address::new(10, 0, 0, 1);

/// The host side of a simulated vif: frames the guest sent come in, frames sent go to the
/// guest.
pub struct PeerDevice {
    nb: Netback,
    mtu: usize,
    max_pending: Option<usize>,
    moved: bool,
    tso: bool,
}

impl PeerDevice {
    /// The host side of `nb`, with an MTU of 1500 and no limit on frames queued for the guest.
    pub fn new(nb: Netback) -> PeerDevice {
        PeerDevice {
            nb,
            mtu: 1500,
            max_pending: None,
            moved: false,
            tso: false,
        }
    }

    /// The same, but its stack sends TCP as a Linux dom0 does to a vif: super-frames of up
    /// to 64 KiB and TCP checksums left to the device (the netback then hands them to the
    /// guest whole, or segments and completes them, see [`Netback::inject_offloaded`]).
    pub fn with_tso(mut self) -> PeerDevice {
        self.tso = true;
        self
    }

    /// The same with another MTU (the guest's, for jumbo frames).
    pub fn with_mtu(mut self, mtu: usize) -> PeerDevice {
        self.mtu = mtu;
        self
    }

    /// The same, but it does not send while more than `max` frames wait for the guest (so as
    /// not to flood a guest that has not posted buffers yet).
    pub fn with_max_pending(mut self, max: usize) -> PeerDevice {
        self.max_pending = Some(max);
        self
    }

    /// A smoltcp interface on this device, as the tests' peer host: MAC [`PEER_MAC`], address
    /// [`PEER_IP`]/24, smoltcp's random seed `seed` (so each test's ports and sequence numbers are
    /// its own but repeatable).
    pub fn interface(&mut self, seed: u64) -> smoltcp::iface::Interface {
        let mut cfg = smoltcp::iface::Config::new(smoltcp::wire::HardwareAddress::Ethernet(
            smoltcp::wire::EthernetAddress(PEER_MAC),
        ));
        cfg.random_seed = seed;
        let mut iface = smoltcp::iface::Interface::new(cfg, self, Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            a.push(smoltcp::wire::IpCidr::new(
                smoltcp::wire::IpAddress::Ipv4(PEER_IP),
                24,
            ))
            .expect("one address");
        });
        iface
    }

    /// The simulated netback.
    pub fn netback(&self) -> &Netback {
        &self.nb
    }

    /// Whether a frame was taken or a send allowed since the last call.
    pub fn take_moved(&mut self) -> bool {
        core::mem::take(&mut self.moved)
    }
}

/// A frame the guest sent.
pub struct PeerRx(Vec<u8>);

impl RxToken for PeerRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Permission to send one frame to the guest.
pub struct PeerTx<'a> {
    nb: &'a Netback,
    tso: bool,
    gso_size: Option<u16>,
}

impl<'a> PeerTx<'a> {
    fn new(nb: &'a Netback, tso: bool) -> Self {
        PeerTx {
            nb,
            tso,
            gso_size: None,
        }
    }
}

impl TxToken for PeerTx<'_> {
    fn set_meta(&mut self, meta: PacketMeta) {
        self.gso_size = meta.segmentation_offload_size.map(|s| s.get());
    }

    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        // TCP over IPv4 (its checksum left blank by the stack when TSO is on).
        let tcp = buf.len() > 34 && buf[12..14] == [0x08, 0x00] && buf[23] == 6;
        if self.tso && tcp {
            let offload = RxOffload {
                csum_partial: true,
                gso_size: self.gso_size,
            };
            self.nb.inject_offloaded(&buf, offload);
        } else {
            self.nb.inject(&buf);
        }
        r
    }
}

impl Device for PeerDevice {
    type RxToken<'a> = PeerRx;
    type TxToken<'a> = PeerTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(PeerRx, PeerTx<'_>)> {
        let f = self.nb.pop_sent()?;
        self.moved = true;
        Some((PeerRx(f), PeerTx::new(&self.nb, self.tso)))
    }

    fn transmit(&mut self, _: Instant) -> Option<PeerTx<'_>> {
        if self
            .max_pending
            .is_some_and(|max| self.nb.pending_to_guest() > max)
        {
            return None;
        }
        self.moved = true;
        Some(PeerTx::new(&self.nb, self.tso))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = self.mtu + 14;
        if self.tso {
            let mut seg = SegmentationCapabilities::default();
            seg.tcpv4 = core::num::NonZeroUsize::new(0xffff);
            c.segmentation = seg;
            c.checksum.tcp = Checksum::Rx;
        }
        c
    }
}

/// A DHCP client message found in a frame.
#[derive(Debug, Clone, Copy)]
pub struct DhcpRequest {
    /// The frame's Ethernet destination.
    pub eth_dst: EthernetAddress,
    /// Discover, Request, ...
    pub message_type: DhcpMessageType,
    transaction_id: u32,
    client: EthernetAddress,
}

/// A DHCP server that offers one address, `offer`, with itself as router.
#[derive(Debug, Clone, Copy)]
pub struct DhcpServer {
    /// The server's MAC.
    pub mac: [u8; 6],
    /// The server's address (also the router and the server identifier).
    pub ip: Ipv4Address,
    /// The address offered (netmask 255.255.255.0, lease one hour).
    pub offer: Ipv4Address,
}

impl DhcpServer {
    /// The DHCP message in `frame`: `None` if the frame is not UDP to port 67 over IPv4,
    /// `Some(Err)` if it is but does not hold a valid DHCP message.
    pub fn parse(frame: &[u8]) -> Option<Result<DhcpRequest, smoltcp::wire::Error>> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Udp {
            return None;
        }
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        if udp.dst_port() != 67 {
            return None;
        }
        let packet = match DhcpPacket::new_checked(udp.payload()) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        Some(DhcpRepr::parse(&packet).map(|r| DhcpRequest {
            eth_dst: eth.dst_addr(),
            message_type: r.message_type,
            transaction_id: r.transaction_id,
            client: r.client_hardware_address,
        }))
    }

    /// The answer to `req` (an Offer to a Discover, an Ack to a Request), broadcast; `None`
    /// for other messages.
    pub fn reply(&self, req: &DhcpRequest) -> Option<Vec<u8>> {
        let message_type = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            _ => return None,
        };
        let reply = DhcpRepr {
            message_type,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: req.client,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip: self.offer,
            server_ip: self.ip,
            router: Some(self.ip),
            subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(self.ip),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(3600),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let dhcp_len = reply.buffer_len();
        let ip_repr = Ipv4Repr {
            src_addr: self.ip,
            dst_addr: Ipv4Address::BROADCAST,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp_len,
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 14 + ip_repr.buffer_len() + 8 + dhcp_len];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress(self.mac),
            dst_addr: req.client,
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let caps = ChecksumCapabilities::default();
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip_repr.emit(&mut ip, &caps);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        UdpRepr {
            src_port: 67,
            dst_port: 68,
        }
        .emit(
            &mut udp,
            &IpAddress::Ipv4(self.ip),
            &IpAddress::Ipv4(Ipv4Address::BROADCAST),
            dhcp_len,
            |p| {
                reply
                    .emit(&mut DhcpPacket::new_unchecked(p))
                    .expect("the buffer is sized for the message")
            },
            &caps,
        );
        Some(buf)
    }
}

/// One step of a test client on the peer's side of a TCP connection: sends what still fits of
/// `out` (from `*sent` on) and appends everything received to `got`.
pub fn exchange(
    s: &mut smoltcp::socket::tcp::Socket<'_>,
    out: &[u8],
    sent: &mut usize,
    got: &mut Vec<u8>,
) {
    if s.can_send() && *sent < out.len() {
        *sent += s.send_slice(&out[*sent..]).expect("peer socket send");
    }
    while s.can_recv() {
        s.recv(|b| {
            got.extend_from_slice(b);
            (b.len(), ())
        })
        .expect("peer socket recv");
    }
}
