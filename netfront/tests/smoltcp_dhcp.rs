//! smoltcp's DHCP client over Netfront gets an address from a small DHCP server that answers
//! on the simulated netback's host side (broadcast frames both ways).

mod common;

use common::{guest, NetGuest};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpMessageType, EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr,
};
use xenia_sim::netback::{Netback, VifConfig};
use xenia_sim::peer::DhcpServer;

const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x67];
const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const OFFER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 50);

/// Answers the guest's DHCP discover and request frames; records the message types seen.
fn dhcp_server(nb: &Netback, seen: &mut Vec<DhcpMessageType>) {
    let server = DhcpServer {
        mac: SERVER_MAC,
        ip: SERVER_IP,
        offer: OFFER_IP,
    };
    while let Some(f) = nb.pop_sent() {
        let Some(req) = DhcpServer::parse(&f) else {
            continue;
        };
        let req = req.expect("a valid DHCP message");
        seen.push(req.message_type);
        assert_eq!(req.eth_dst, EthernetAddress::BROADCAST);
        let reply = server
            .reply(&req)
            .unwrap_or_else(|| panic!("unexpected {:?}", req.message_type));
        nb.inject(&reply);
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
