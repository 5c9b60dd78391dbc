//! A DHCP relay agent playing a client (RFC 2131 §4.1, RFC 3046): it binds giaddr:67,
//! sends a client's DISCOVER and REQUEST to the server's port 67 with giaddr set (and
//! option 82 when the device is known by where it is cabled), and reads the server's
//! replies to giaddr. A client on the server's own link is played without a relay: it
//! broadcasts from port 68 with the broadcast flag set (RFC 2131 §4.1), so the server
//! broadcasts its reply. Requests are built with dhcproto; replies are read from the
//! raw bytes, so what is compared is exactly what the server put on the wire.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType, relay};
use dhcproto::{Encodable, Encoder};

use super::nos::Identity;

/// One client as the relay forwards it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: Identity,
    pub xid: u32,
    /// The relay's address on the client's link, which selects the subnet; None for a
    /// client on the server's own link, which broadcasts.
    pub giaddr: Option<Ipv4Addr>,
    /// Option 82 sub-options 1 (circuit-id) and 2 (remote-id).
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
}

/// A reply as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    /// The BOOTP `sname` and `file` fields, up to their first NUL.
    pub sname: Vec<u8>,
    pub file: Vec<u8>,
    /// Option code → data (options split over several instances joined, RFC 3396).
    pub options: BTreeMap<u8, Vec<u8>>,
}

impl Reply {
    pub fn kind(&self) -> Option<MessageType> {
        self.options.get(&53).and_then(|v| v.first()).map(|b| MessageType::from(*b))
    }
}

/// The relay agent: one socket per giaddr, all sending to `server`:67, and the
/// clients' port 68 for those on the server's link.
pub struct Relay {
    socks: HashMap<Ipv4Addr, UdpSocket>,
    local: UdpSocket,
    server: SocketAddrV4,
}

impl Relay {
    pub fn bind(server: Ipv4Addr, giaddrs: &[Ipv4Addr]) -> std::io::Result<Relay> {
        let mut socks = HashMap::new();
        for g in giaddrs {
            let s = UdpSocket::bind(SocketAddrV4::new(*g, 67))?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            socks.insert(*g, s);
        }
        let local = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))?;
        local.set_broadcast(true)?;
        local.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Relay { socks, local, server: SocketAddrV4::new(server, 67) })
    }

    /// DISCOVER → OFFER → REQUEST (SELECTING, RFC 2131 §4.3.2) → ACK. `patience`: how
    /// long to keep resending each message when no answer comes (a server just started
    /// may need a moment).
    pub fn dora(&self, c: &Client, patience: Duration) -> Result<(Reply, Reply), String> {
        let discover = self.message(c, MessageType::Discover, &[]);
        let offer = self.exchange(c, &discover, &[MessageType::Offer], patience)?;
        let sid = offer.options.get(&54).filter(|v| v.len() == 4).ok_or("OFFER without server identifier")?;
        let sid = Ipv4Addr::new(sid[0], sid[1], sid[2], sid[3]);
        let extra = [DhcpOption::RequestedIpAddress(offer.yiaddr), DhcpOption::ServerIdentifier(sid)];
        let request = self.message(c, MessageType::Request, &extra);
        let ack = self.exchange(c, &request, &[MessageType::Ack, MessageType::Nak], patience)?;
        Ok((offer, ack))
    }

    fn message(&self, c: &Client, mt: MessageType, extra: &[DhcpOption]) -> Vec<u8> {
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootRequest).set_chaddr(&c.id.chaddr).set_xid(c.xid);
        // A client without an address asks for a broadcast answer; our namespace's
        // interface does not carry the client's MAC, so a unicast one would not arrive.
        if c.id.broadcast || c.giaddr.is_none() {
            m.set_flags(v4::Flags::default().set_broadcast());
        }
        // What the relay agent adds (RFC 2131 §4.1, RFC 3046 §2.1).
        if let Some(g) = c.giaddr {
            m.set_giaddr(g).set_hops(1);
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(mt));
        for opt in c.id.options.iter().chain(extra) {
            o.insert(opt.clone());
        }
        if c.giaddr.is_some() && (c.circuit_id.is_some() || c.remote_id.is_some()) {
            let mut info = relay::RelayAgentInformation::default();
            if let Some(v) = &c.circuit_id {
                info.insert(relay::RelayInfo::AgentCircuitId(v.clone()));
            }
            if let Some(v) = &c.remote_id {
                info.insert(relay::RelayInfo::AgentRemoteId(v.clone()));
            }
            o.insert(DhcpOption::RelayAgentInformation(info));
        }
        let mut bytes = Vec::new();
        m.encode(&mut Encoder::new(&mut bytes)).expect("a request encodes");
        bytes
    }

    /// Send `bytes` from giaddr:67 (or broadcast them from port 68) and wait for a reply
    /// of a `want`ed type with the same xid (a late duplicate OFFER is not the ACK),
    /// resending every 500 ms until `patience` is spent.
    fn exchange(
        &self,
        c: &Client,
        bytes: &[u8],
        want: &[MessageType],
        patience: Duration,
    ) -> Result<Reply, String> {
        let (sock, to) = match c.giaddr {
            Some(g) => (self.socks.get(&g).ok_or_else(|| format!("no relay socket on {g}"))?, self.server),
            None => (&self.local, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67)),
        };
        let deadline = Instant::now() + patience;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            sock.send_to(bytes, to).map_err(|e| format!("send to {to}: {e}"))?;
            let resend = Instant::now() + Duration::from_millis(500);
            while Instant::now() < resend.min(deadline) {
                let Ok((n, _)) = sock.recv_from(&mut buf) else { continue };
                let r = parse(&buf[..n])
                    .filter(|r| xid(&buf[..n]) == Some(c.xid) && r.kind().is_some_and(|k| want.contains(&k)));
                if let Some(r) = r {
                    return Ok(r);
                }
            }
        }
        Err(format!("no {want:?} within {patience:?}"))
    }
}

fn xid(b: &[u8]) -> Option<u32> {
    b.get(4..8).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// Read a BOOTREPLY straight from its bytes (RFC 2131 §2 layout).
pub fn parse(b: &[u8]) -> Option<Reply> {
    if b.len() < 240 || b[0] != 2 || b[236..240] != [99, 130, 83, 99] {
        return None;
    }
    let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let field = |r: std::ops::Range<usize>| b[r].iter().copied().take_while(|c| *c != 0).collect();
    let mut options: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut i = 240;
    while i < b.len() {
        match b[i] {
            0 => i += 1,
            255 => break,
            code => {
                let n = usize::from(*b.get(i + 1)?);
                options.entry(code).or_default().extend_from_slice(b.get(i + 2..i + 2 + n)?);
                i += 2 + n;
            }
        }
    }
    Some(Reply { yiaddr: ip(16), siaddr: ip(20), sname: field(44..108), file: field(108..236), options })
}
