//! smoltcp's DHCP client over Netfront gets an address from a small DHCP server that answers
//! on the simulated netback's host side (broadcast frames both ways).

mod common;

use common::guest;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv4Cidr,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use xenia_xen::sim::netback::{Netback, VifConfig};

const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x67];
const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const OFFER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 50);

/// Answers the guest's DHCP discover and request frames; returns the message types seen.
fn dhcp_server(nb: &Netback, seen: &mut Vec<DhcpMessageType>) {
    while let Some(f) = nb.pop_sent() {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
            continue;
        };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            continue;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            continue;
        };
        if ip.next_header() != IpProtocol::Udp {
            continue;
        }
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            continue;
        };
        if udp.dst_port() != 67 {
            continue;
        }
        let dhcp = DhcpPacket::new_checked(udp.payload()).expect("a DHCP packet");
        let req = DhcpRepr::parse(&dhcp).expect("a valid DHCP message");
        seen.push(req.message_type);
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
        let message_type = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            other => panic!("unexpected {other:?}"),
        };
        let reply = DhcpRepr {
            message_type,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: req.client_hardware_address,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip: OFFER_IP,
            server_ip: SERVER_IP,
            router: Some(SERVER_IP),
            subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(SERVER_IP),
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
            src_addr: SERVER_IP,
            dst_addr: Ipv4Address::BROADCAST,
            next_header: IpProtocol::Udp,
            payload_len: 8 + dhcp_len,
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 14 + ip_repr.buffer_len() + 8 + dhcp_len];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress(SERVER_MAC),
            dst_addr: req.client_hardware_address,
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
            &IpAddress::Ipv4(SERVER_IP),
            &IpAddress::Ipv4(Ipv4Address::BROADCAST),
            dhcp_len,
            |p| reply.emit(&mut DhcpPacket::new_unchecked(p)).unwrap(),
            &caps,
        );
        nb.inject(&buf);
    }
}

#[test]
fn dhcp_configures_the_guest_over_netfront() {
    let g = guest();
    let nb = g.add_vif(VifConfig::new(0));
    let mut nf = g.connect(0).unwrap();
    let mac = nf.mac();
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(mac))),
        &mut nf,
        Instant::from_millis(0),
    );
    let mut sockets = SocketSet::new(vec![]);
    let h = sockets.add(dhcpv4::Socket::new());
    let mut seen = Vec::new();
    let mut config = None;
    for t in 0..5_000 {
        let now = Instant::from_millis(t * 10);
        iface.poll(now, &mut nf, &mut sockets);
        g.run();
        dhcp_server(&nb, &mut seen);
        g.run();
        if let Some(dhcpv4::Event::Configured(c)) = sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            iface.update_ip_addrs(|a| {
                a.clear();
                a.push(IpCidr::Ipv4(c.address)).unwrap();
            });
            config = Some((c.address, c.router));
            break;
        }
    }
    assert_eq!(
        config,
        Some((Ipv4Cidr::new(OFFER_IP, 24), Some(SERVER_IP))),
        "messages seen: {seen:?}"
    );
    assert_eq!(
        seen,
        vec![DhcpMessageType::Discover, DhcpMessageType::Request]
    );
    assert!(iface.has_ip_addr(IpAddress::Ipv4(OFFER_IP)));
    assert_eq!(nf.stats().rx_packets, 2);
}
