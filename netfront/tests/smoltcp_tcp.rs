//! smoltcp on top: a guest `Interface` over Netfront talks TCP (with ARP first) to a peer
//! `Interface` on the simulated netback's host side.

mod common;

use common::{guest, NetGuest};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use xenia_sim::netback::VifConfig;
use xenia_sim::peer::PeerDevice;

fn iface<D: Device>(dev: &mut D, mac: [u8; 6], ip: [u8; 4]) -> Interface {
    let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    cfg.random_seed = u64::from(ip[3]);
    let mut i = Interface::new(cfg, dev, Instant::from_millis(0));
    i.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
            .unwrap();
    });
    i
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65535]),
        tcp::SocketBuffer::new(vec![0; 65535]),
    )
}

/// The guest connects to an echo server on the peer, sends `total` bytes and reads them back,
/// with the backend offering TCPv4 GSO (and the peer's stack sending super-frames, which the
/// guest takes whole) or not.
fn tcp_echo(mtu: Option<&str>, total: usize, gso: bool) {
    let g = guest();
    let mut cfg = VifConfig::new(0);
    cfg.mtu = mtu.map(Into::into);
    cfg.feature_gso_tcpv4 = gso;
    let nb = g.add_vif(cfg);
    let mut nf = g.connect(0).unwrap();
    assert_eq!(nf.tso(), gso);
    let guest_mac = nf.mac();
    let mut peer = PeerDevice::new(nb.clone()).with_mtu(nf.mtu());
    if gso {
        peer = peer.with_tso();
    }
    let mut gi = iface(&mut nf, guest_mac, [10, 0, 0, 1]);
    let mut pi = iface(&mut peer, [0x02, 0, 0, 0, 0, 0x99], [10, 0, 0, 2]);
    let mut gs = SocketSet::new(vec![]);
    let mut ps = SocketSet::new(vec![]);
    let gh = gs.add(tcp_socket());
    let ph = ps.add(tcp_socket());
    ps.get_mut::<tcp::Socket>(ph).listen(7).unwrap();
    gs.get_mut::<tcp::Socket>(gh)
        .connect(gi.context(), (IpAddress::v4(10, 0, 0, 2), 7), 49152)
        .unwrap();

    let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    let mut echoed = Vec::new();
    let mut t = 0;
    while echoed.len() < total {
        t += 1;
        assert!(t < 20_000, "stuck: sent {sent}, echoed {}", echoed.len());
        let now = Instant::from_millis(t);
        gi.poll(now, &mut nf, &mut gs);
        g.run();
        pi.poll(now, &mut peer, &mut ps);
        g.run();
        // The peer echoes.
        let s = ps.get_mut::<tcp::Socket>(ph);
        if s.can_recv() && s.can_send() {
            let mut buf = [0u8; 4096];
            let room = s.send_capacity() - s.send_queue();
            let n = s.recv_slice(&mut buf[..room.min(4096)]).unwrap();
            assert_eq!(s.send_slice(&buf[..n]).unwrap(), n);
        }
        // The guest sends and reads back.
        let s = gs.get_mut::<tcp::Socket>(gh);
        if s.may_send() && sent < total {
            sent += s.send_slice(&data[sent..]).unwrap();
        }
        if s.can_recv() {
            let mut buf = [0u8; 8192];
            let n = s.recv_slice(&mut buf).unwrap();
            echoed.extend_from_slice(&buf[..n]);
        }
    }
    assert!(echoed == data, "the echo differs");
    let st = nf.stats();
    assert!(st.rx_packets > 0 && st.tx_packets > 0);
    assert_eq!(
        (
            st.rx_bad_id,
            st.rx_bad_size,
            st.rx_bad_status,
            st.ring_errors,
            st.tx_bad_id,
            st.tx_errors,
            st.tx_offload_errors
        ),
        (0, 0, 0, 0, 0, 0, 0)
    );
    assert!(nf.broken().is_none());
    let nbs = nb.stats();
    if gso {
        // Super-frames went out, each checked by the netback (a bad one panics there) and
        // cut into segments; every other TCP frame had its checksum left to the backend.
        assert!(st.tx_gso_frames > 0, "{st:?}");
        assert_eq!(nbs.tx_gso_frames, st.tx_gso_frames);
        assert!(nbs.tx_segments > 2 * nbs.tx_gso_frames, "{nbs:?}");
        assert_eq!(nbs.tx_csum_blank, st.tx_csum_offload);
        assert_eq!(
            st.tx_gso_frames + st.tx_csum_offload,
            st.tx_packets - ARP_FRAMES
        );
        // The extra-info slots were answered (NETIF_RSP_NULL) and skipped.
        assert_eq!(st.tx_slots, nbs.tx_slots);
        // Large receive: the peer's super-frames arrived whole, their partial checksums
        // completed here (smoltcp checked them).
        assert!(st.rx_gso_frames > 0, "{st:?}");
        assert_eq!(st.rx_gso_frames, nbs.rx_gso_frames);
        assert!(st.rx_csum_completed >= st.rx_gso_frames, "{st:?}");
        assert!(st.rx_bytes / st.rx_packets > 3000, "{st:?}");
    } else {
        assert_eq!((st.tx_gso_frames, st.tx_csum_offload), (0, 0));
        assert_eq!((st.rx_gso_frames, st.rx_csum_completed), (0, 0));
        assert_eq!((nbs.tx_gso_frames, nbs.tx_csum_blank), (0, 0));
    }
    if nf.mtu() > 4096 {
        // Segments larger than a page crossed the link.
        assert!(st.tx_bytes / st.tx_packets > 1500, "{st:?}");
    }
}

/// The frames the guest sends that are not TCP: its ARP request for the peer.
const ARP_FRAMES: u64 = 1;

#[test]
fn tcp_echo_over_netfront() {
    tcp_echo(None, 200_000, false);
}

#[test]
fn tcp_echo_with_tso_super_frames() {
    tcp_echo(None, 1_000_000, true);
}

#[test]
fn tcp_echo_with_jumbo_frames_over_scatter_gather() {
    tcp_echo(Some("9000"), 300_000, false);
}

#[test]
fn tcp_echo_with_jumbo_frames_and_tso() {
    tcp_echo(Some("9000"), 300_000, true);
}
