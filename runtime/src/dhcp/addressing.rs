//! Where a reply goes: RFC 2131 §4.1, "Constructing and sending DHCP messages".

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use dhcproto::v4::{self, MessageType};

use crate::dhcp::wire::{CLIENT_PORT, SERVER_PORT};

/// The destination of `reply` (of type `kind`) to `req`:
/// - relayed (giaddr set): the relay agent, giaddr:67, for every reply type;
/// - a NAK not relayed: broadcast, since the client's address is not valid;
/// - ciaddr set (RENEWING, REBINDING, INFORM): unicast to ciaddr:68;
/// - broadcast flag set: 255.255.255.255:68;
/// - otherwise RFC 2131 asks for a unicast to yiaddr at chaddr, which needs an ARP entry
///   written for the client first; a userspace UDP socket cannot do that, so the reply
///   is broadcast instead, which every client accepts (dhcpd does the same without its
///   raw-socket mode).
pub fn destination(req: &v4::Message, kind: MessageType) -> SocketAddr {
    let to = |ip: Ipv4Addr, port: u16| SocketAddr::V4(SocketAddrV4::new(ip, port));
    let giaddr = req.giaddr();
    let ciaddr = req.ciaddr();
    if !giaddr.is_unspecified() {
        to(giaddr, SERVER_PORT)
    } else if kind == MessageType::Nak {
        to(Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else if !ciaddr.is_unspecified() {
        to(ciaddr, CLIENT_PORT)
    } else {
        to(Ipv4Addr::BROADCAST, CLIENT_PORT)
    }
}

/// The directed broadcast of the reply's subnet (yiaddr with the host bits set, from
/// the reply's own subnet-mask option), for when a limited broadcast cannot be routed.
pub fn directed_broadcast(reply: &v4::Message) -> Option<SocketAddr> {
    let yi = reply.yiaddr();
    if yi.is_unspecified() {
        return None;
    }
    let Some(v4::DhcpOption::SubnetMask(mask)) = reply.opts().get(v4::OptionCode::SubnetMask) else {
        return None;
    };
    let b = Ipv4Addr::from(u32::from(yi) | !u32::from(*mask));
    Some(SocketAddr::V4(SocketAddrV4::new(b, CLIENT_PORT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(giaddr: [u8; 4], ciaddr: [u8; 4], broadcast: bool) -> v4::Message {
        let mut m = v4::Message::default();
        m.set_giaddr(giaddr).set_ciaddr(ciaddr);
        if broadcast {
            m.set_flags(v4::Flags::default().set_broadcast());
        }
        m
    }

    #[test]
    fn follows_rfc2131_section_4_1() {
        let relayed = msg([10, 0, 0, 1], [0; 4], false);
        assert_eq!(destination(&relayed, MessageType::Offer), "10.0.0.1:67".parse().unwrap());
        assert_eq!(destination(&relayed, MessageType::Nak), "10.0.0.1:67".parse().unwrap());
        let renewing = msg([0; 4], [10, 0, 0, 9], false);
        assert_eq!(destination(&renewing, MessageType::Ack), "10.0.0.9:68".parse().unwrap());
        assert_eq!(destination(&renewing, MessageType::Nak), "255.255.255.255:68".parse().unwrap());
        let flagged = msg([0; 4], [0; 4], true);
        assert_eq!(destination(&flagged, MessageType::Offer), "255.255.255.255:68".parse().unwrap());
        let mut offer = v4::Message::default();
        offer.set_yiaddr([10, 99, 0, 11]);
        assert_eq!(directed_broadcast(&offer), None);
        offer.opts_mut().insert(v4::DhcpOption::SubnetMask([255, 255, 255, 0].into()));
        assert_eq!(directed_broadcast(&offer), Some("10.99.0.255:68".parse().unwrap()));
        let plain = msg([0; 4], [0; 4], false);
        assert_eq!(destination(&plain, MessageType::Ack), "255.255.255.255:68".parse().unwrap());
    }
}
