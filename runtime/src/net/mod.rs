//! Networking: a TCP/IP stack (smoltcp) over the domain's virtual network interfaces.
//!
//! ```ignore
//! xenia::net::init().await?;                  // vif 0, `ip=10.0.0.2/24 gw=10.0.0.1` or DHCP
//! let listener = xenia::net::TcpListener::bind(80)?;
//! loop {
//!     let mut conn = listener.accept().await?;
//!     xenia::spawn(async move {
//!         let mut buf = [0u8; 512];
//!         while let Ok(n) = conn.read(&mut buf).await {
//!             if n == 0 { break }
//!             if conn.write_all(&buf[..n]).await.is_err() { break }
//!         }
//!     });
//! }
//! ```
//!
//! Each [`Stack`] is one smoltcp `Interface` over one
//! [`Netfront`](xenia_netfront::Netfront) (vif `index`), with its sockets. A background task drives it: it polls the interface, then sleeps until the
//! interface's next timer (`poll_at`), an event from the netfront, or a socket operation that
//! has something to send, whichever comes first. Socket futures register their wakers with
//! smoltcp and wake when the driver's poll changed their socket. Nothing busy-polls.
//!
//! The address comes from the command line (`ip=ADDR/PREFIX gw=ADDR` for vif 0, `ip1=`,
//! `gw1=` for vif 1, ...) or, when none is given, from DHCP.
//!
//! Listening sockets: smoltcp's TCP socket serves one connection, so a [`TcpListener`] keeps
//! a listening socket on its port and, after every incoming packet, moves one that took a SYN
//! to its half-open connections and listens on another. Only connections that complete their
//! handshake reach the accept queue and the app. Each listener's sockets count against the
//! budgets of its [`ListenConfig`] (half-open connections, which give way oldest first and
//! time out after a few seconds; the accept queue; accepted streams; orphans), so a SYN flood
//! or a client that leaks connections cannot exhaust memory. A [`TcpStream`] dropped without
//! [`TcpStream::close`] is closed gracefully and its buffers are freed once the connection is
//! closed, or after a grace period with a reset: the driver wakes for that deadline itself.
//! [`Stats`] counts half-open connections, dropped SYNs, orphans and reaped sockets.

pub mod budget;
mod stack;
mod tcp;
mod udp;

pub use stack::{init, open, stack, stats, IpConfig, Stack, Stats};
pub use tcp::{ListenConfig, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use xenia_netfront::{NetStats, NetfrontConfig, NetfrontError};

use alloc::string::String;

/// An IPv4 address.
pub use core::net::Ipv4Addr;

/// Errors of the network stack and its sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The runtime's event channels or grant table are not available.
    NoServices(&'static str),
    /// The network interface could not be connected.
    Device(NetfrontError),
    /// The address configuration (command line or arguments) is not usable.
    BadConfig(String),
    /// No DHCP server answered in time.
    DhcpTimeout,
    /// [`init`] has not run (or failed).
    NotInitialized,
    /// The local port is already bound.
    AddrInUse(u16),
    /// The address or port cannot be used (port 0, unspecified address, no route...).
    Unaddressable,
    /// The peer refused the connection (reset during the handshake).
    ConnectionRefused,
    /// The connection was reset.
    ConnectionReset,
    /// The socket is not connected (or already closed for writing).
    NotConnected,
    /// The datagram is larger than the socket's buffer.
    TooLarge(usize),
    /// The vif index is already open.
    AlreadyOpen(u32),
    /// Something took too long (what).
    Timeout(String),
    /// A read, write or flush waited longer than the stream's idle timeout.
    IdleTimeout,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoServices(what) => write!(f, "net: {what} not available"),
            NetError::Device(e) => write!(f, "net: {e}"),
            NetError::BadConfig(what) => write!(f, "net: bad configuration: {what}"),
            NetError::DhcpTimeout => write!(f, "net: no DHCP answer"),
            NetError::NotInitialized => write!(f, "net: not initialized (call xenia::net::init)"),
            NetError::AddrInUse(p) => write!(f, "net: port {p} already in use"),
            NetError::Unaddressable => write!(f, "net: address unusable"),
            NetError::ConnectionRefused => write!(f, "net: connection refused"),
            NetError::ConnectionReset => write!(f, "net: connection reset"),
            NetError::NotConnected => write!(f, "net: not connected"),
            NetError::TooLarge(n) => write!(f, "net: {n}-byte datagram too large"),
            NetError::AlreadyOpen(i) => write!(f, "net: vif {i} already open"),
            NetError::Timeout(what) => write!(f, "net: {what}"),
            NetError::IdleTimeout => write!(f, "net: connection idle past its timeout"),
        }
    }
}

impl core::error::Error for NetError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            NetError::Device(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetfrontError> for NetError {
    fn from(e: NetfrontError) -> Self {
        NetError::Device(e)
    }
}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            NetError::ConnectionRefused => K::ConnectionRefused,
            NetError::ConnectionReset => K::ConnectionReset,
            NetError::NotConnected => K::NotConnected,
            NetError::AddrInUse(_) => K::AddrInUse,
            NetError::Unaddressable => K::AddrNotAvailable,
            NetError::TooLarge(_) => K::InvalidInput,
            NetError::BadConfig(_) => K::InvalidInput,
            NetError::Timeout(_) | NetError::IdleTimeout => K::TimedOut,
            _ => K::Other,
        }
    }
}

/// Parses `ADDR/PREFIX` (`10.0.0.2/24`).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), NetError> {
    let bad = || NetError::BadConfig(alloc::format!("{s:?} is not ADDR/PREFIX"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().map_err(|_| bad())?;
    if prefix > 32 || addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        return Err(bad());
    }
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.2/24"),
            Ok((Ipv4Addr::new(10, 0, 0, 2), 24))
        );
        assert_eq!(
            parse_cidr("1.2.3.4/32"),
            Ok((Ipv4Addr::new(1, 2, 3, 4), 32))
        );
        for bad in [
            "10.0.0.2",
            "10.0.0.2/33",
            "0.0.0.0/8",
            "x/24",
            "10.0.0/24",
            "224.0.0.1/4",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_from_cmdline() {
        let c = IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0.1", 0).unwrap();
        assert_eq!(
            c,
            IpConfig::Static {
                addr: Ipv4Addr::new(10, 0, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            }
        );
        let c1 = IpConfig::from_cmdline("ip=10.0.0.2/24 ip1=192.168.5.9/16", 1).unwrap();
        assert_eq!(
            c1,
            IpConfig::Static {
                addr: Ipv4Addr::new(192, 168, 5, 9),
                prefix: 16,
                gateway: None,
            }
        );
        assert_eq!(
            IpConfig::from_cmdline("loglevel=debug", 0),
            Ok(IpConfig::Dhcp)
        );
        assert_eq!(IpConfig::from_cmdline("ip=dhcp", 0), Ok(IpConfig::Dhcp));
        assert!(IpConfig::from_cmdline("ip=10.0.0.2", 0).is_err());
        assert!(IpConfig::from_cmdline("ip=10.0.0.2/24 gw=10.0.0", 0).is_err());
    }
}
