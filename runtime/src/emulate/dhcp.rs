//! The DHCP exchange as a relay agent forwards it: DISCOVER/REQUEST with `giaddr` set,
//! hop count 1 and, when given, option 82; sent from GIADDR:67 to the server's port 67,
//! whose answers come back to GIADDR:67 (RFC 2131 4.1, RFC 3046).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode, relay};
use dhcproto::{Decodable, Decoder, Encodable};

use super::device::Device;

/// What the relay adds: RFC 3046 circuit-id and remote-id.
#[derive(Debug, Clone)]
pub struct Relay {
    pub giaddr: Ipv4Addr,
    pub remote_id: Option<String>,
    pub circuit_id: Option<String>,
}

/// The ACK, kept whole: the boot file and the address are read from it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub ack: v4::Message,
}

impl Lease {
    pub fn hostname(&self) -> Option<String> {
        match self.ack.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(h.clone()),
            _ => None,
        }
    }
}

/// How long to wait for each answer before sending again: doubling, as RFC 2131 §4.1
/// has clients back off (from 2 s rather than 4, so a rehearsal fails faster when no
/// server answers at all). Switches keep retrying for minutes; a boot storm of 1,000
/// devices on a small server needs more than a few seconds of patience (62 s in all).
const ANSWER_WAITS: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
];
const TRIES: usize = ANSWER_WAITS.len();
/// Several emulated devices behind one relay take turns on GIADDR:67.
const PORT_WAIT: Duration = Duration::from_secs(120);

/// Bind GIADDR:67; another device behind the same relay may hold it for a moment.
fn bind(giaddr: Ipv4Addr) -> Result<UdpSocket, String> {
    let until = Instant::now() + PORT_WAIT;
    loop {
        match UdpSocket::bind(SocketAddrV4::new(giaddr, 67)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(0..20)));
            }
            Err(e) => {
                return Err(format!(
                    "cannot bind the relay address {giaddr}:67 ({e}); it must be an address of this \
                     namespace and the process needs root (CAP_NET_BIND_SERVICE)"
                ));
            }
        }
    }
}

fn request(dev: &Device, relay: &Relay, xid: u32, kind: MessageType, extra: &[DhcpOption]) -> v4::Message {
    let mut m = v4::Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        relay.giaddr,
        &dev.mac,
    );
    m.set_hops(1);
    if dev.broadcast() {
        m.set_flags(v4::Flags::default().set_broadcast());
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    for opt in dev.dhcp_options().into_iter().chain(extra.iter().cloned()) {
        o.insert(opt);
    }
    if relay.remote_id.is_some() || relay.circuit_id.is_some() {
        let mut info = relay::RelayAgentInformation::default();
        if let Some(c) = &relay.circuit_id {
            info.insert(relay::RelayInfo::AgentCircuitId(c.as_bytes().to_vec()));
        }
        if let Some(r) = &relay.remote_id {
            info.insert(relay::RelayInfo::AgentRemoteId(r.as_bytes().to_vec()));
        }
        o.insert(DhcpOption::RelayAgentInformation(info));
    }
    m
}

fn kind(m: &v4::Message) -> Option<MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// Send `m` until an answer of one of `want` with our xid arrives.
fn ask(
    sock: &UdpSocket,
    server: Ipv4Addr,
    m: &v4::Message,
    want: &[MessageType],
) -> Result<v4::Message, String> {
    let bytes = m.to_vec().map_err(|e| format!("cannot encode the request: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    for wait in ANSWER_WAITS {
        sock.send_to(&bytes, SocketAddrV4::new(server, 67))
            .map_err(|e| format!("cannot send to {server}:67: {e}"))?;
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let n = match sock.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                Err(e) => return Err(format!("receive failed: {e}")),
            };
            let Ok(reply) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
            if reply.xid() != m.xid() || reply.opcode() != v4::Opcode::BootReply {
                continue;
            }
            match kind(&reply) {
                Some(t) if want.contains(&t) => return Ok(reply),
                _ => continue,
            }
        }
    }
    Err(format!("no answer from {server}:67 after {TRIES} tries"))
}

/// DISCOVER, OFFER, REQUEST, ACK. `say` prints each step.
pub fn exchange(
    dev: &Device,
    relay: &Relay,
    server: Ipv4Addr,
    mut say: impl FnMut(String),
) -> Result<Lease, String> {
    let sock = bind(relay.giaddr)?;
    let xid = fastrand::u32(..);
    say(format!("DHCPDISCOVER relayed from {} to {server}:67 (xid {xid:#010x})", relay.giaddr));
    let offer =
        ask(&sock, server, &request(dev, relay, xid, MessageType::Discover, &[]), &[MessageType::Offer])?;
    let sid = match offer.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => server,
    };
    say(format!("DHCPOFFER {} from {sid}", offer.yiaddr()));
    let extra = [DhcpOption::RequestedIpAddress(offer.yiaddr()), DhcpOption::ServerIdentifier(sid)];
    let req = request(dev, relay, xid, MessageType::Request, &extra);
    let ack = ask(&sock, server, &req, &[MessageType::Ack, MessageType::Nak])?;
    if kind(&ack) == Some(MessageType::Nak) {
        return Err(format!("DHCPNAK for {}", offer.yiaddr()));
    }
    let prefix = match ack.opts().get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => u32::from(*m).count_ones() as u8,
        _ => 24,
    };
    let lease = Lease { address: ack.yiaddr(), prefix, ack };
    say(format!(
        "DHCPACK {}/{}{}",
        lease.address,
        lease.prefix,
        lease.hostname().map(|h| format!(", host name {h}")).unwrap_or_default()
    ));
    Ok(lease)
}
