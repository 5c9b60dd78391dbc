//! The reply function: a pure function of (generation's DHCP config, leases, request,
//! time) to (reply, lease change). No I/O, no clock, no randomness, so it is tested
//! packet by packet without sockets (runtime/tests/dhcp_reply.rs).
//!
//! RFC 2131 §4.3, as a server authoritative for the fabric's subnets: unlike the
//! "remain silent" rule of §4.3.2 for unknown clients in INIT-REBOOT, a request for a
//! free pool address is granted (our leases are persisted, so "no record" means the
//! address is free) and one for an address that is not the client's is refused with a
//! NAK, so a client never keeps an address that another one holds.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode};
use ztpc::platform::Platform;
use ztpc::render::manifest::DeviceInfo;

use crate::dhcp::classify;
use crate::dhcp::config::{Config, Subnet};
use crate::dhcp::leases::{Change, ClientKey, DECLINE_HOLD_SECS, LeaseState, LeaseView, OFFER_HOLD_SECS};
use crate::dhcp::options::{self, Target, Wanted};

/// A decoded request and where it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub msg: v4::Message,
    /// The address the request arrived on: the listening address, or the ZTP server's
    /// address when listening on 0.0.0.0. Selects the subnet of local (not relayed)
    /// clients.
    pub local: Ipv4Addr,
}

impl Request {
    /// Relayed requests carry the relay agent's address in giaddr (RFC 2131 §4.1).
    pub fn relayed(&self) -> bool {
        !self.msg.giaddr().is_unspecified()
    }
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub reply: Option<v4::Message>,
    /// Why there is no reply, or what the reply says, for the log line.
    pub why: &'static str,
    /// Something an administrator should see (RFC 2131 §4.3.3: a declined address).
    pub notable: bool,
    pub change: Change,
    pub platform: Option<Platform>,
    /// Index into [`Config::devices`].
    pub device: Option<usize>,
    pub addr: Option<Ipv4Addr>,
}

impl Decision {
    pub fn kind(&self) -> Option<MessageType> {
        self.reply.as_ref().and_then(|m| m.opts().msg_type())
    }

    /// An ACK of a pool lease may only leave once its lease is on disk.
    pub fn must_persist(&self) -> bool {
        matches!(self.change, Change::Bind { .. })
    }
}

pub fn reply(cfg: &Config, leases: &impl LeaseView, req: &Request, now: u64) -> Decision {
    let msg = &req.msg;
    let bare = Decision {
        reply: None,
        why: "",
        notable: false,
        change: Change::None,
        platform: None,
        device: None,
        addr: None,
    };
    if msg.opcode() != v4::Opcode::BootRequest || msg.hlen() > 16 {
        return Decision { why: "not a BOOTREQUEST", ..bare };
    }
    let Some(mt) = msg.opts().msg_type() else {
        return Decision { why: "no message type (plain BOOTP is not served)", ..bare };
    };
    let c = Ctx {
        cfg,
        leases,
        msg,
        local: req.local,
        now,
        client: ClientKey::of(msg),
        device: classify::device(cfg, msg),
        platform: classify::platform(msg),
        wanted: Wanted::of(msg.opts()),
    };
    match mt {
        MessageType::Discover => c.discover(),
        MessageType::Request => c.request(),
        MessageType::Release => c.release(),
        MessageType::Decline => c.decline(),
        MessageType::Inform => c.inform(),
        _ => c.drop("not a message a server answers"),
    }
}

struct Ctx<'a, L> {
    cfg: &'a Config,
    leases: &'a L,
    msg: &'a v4::Message,
    local: Ipv4Addr,
    now: u64,
    client: ClientKey,
    device: Option<(usize, &'a DeviceInfo)>,
    platform: Option<Platform>,
    wanted: Wanted,
}

impl<L: LeaseView> Ctx<'_, L> {
    fn decision(
        &self,
        reply: Option<v4::Message>,
        why: &'static str,
        change: Change,
        addr: Option<Ipv4Addr>,
    ) -> Decision {
        Decision {
            reply,
            why,
            notable: false,
            change,
            platform: self.platform,
            device: self.device.map(|(i, _)| i),
            addr,
        }
    }

    fn drop(&self, why: &'static str) -> Decision {
        self.decision(None, why, Change::None, None)
    }

    /// RFC 2131 §4.3.1: DISCOVER → OFFER of the reserved address, the client's current
    /// or previous address, the address it asks for, or a free one, in that order.
    fn discover(&self) -> Decision {
        let Some(s) = self.subnet(false) else { return self.drop("no served subnet for this link") };
        let (addr, change) = match self.reserved(s) {
            Some(a) => (a, Change::None),
            None => match self.pick(s) {
                Some(a) => {
                    (a, Change::Offer { addr: a, client: self.client, until: self.now + OFFER_HOLD_SECS })
                }
                None => return self.drop("no free address in the subnet's pools"),
            },
        };
        let m = self.answer(MessageType::Offer, s, addr, true);
        self.decision(Some(m), "offer", change, Some(addr))
    }

    /// RFC 2131 §4.3.2: the client's state decides which address it means.
    fn request(&self) -> Decision {
        let ciaddr = self.msg.ciaddr();
        let addr = if let Some(sid) = self.server_id() {
            // SELECTING: the client answers one server's offer.
            if sid != self.cfg.server_id {
                let w = Change::Withdraw { client: self.client };
                return self.decision(None, "the client chose another server", w, None);
            }
            match self.requested() {
                Some(r) => r,
                None => return self.drop("SELECTING without a requested address"),
            }
        } else if !ciaddr.is_unspecified() {
            // RENEWING (unicast) or REBINDING (broadcast): the address in use is ciaddr.
            ciaddr
        } else if let Some(r) = self.requested() {
            // INIT-REBOOT: the client checks the address it remembers.
            r
        } else {
            return self.drop("REQUEST names no address");
        };
        let Some(s) = self.subnet(true) else { return self.drop("no served subnet for this link") };
        if !s.cidr.contains(addr) {
            return self.nak("requested address is not on the client's network", addr);
        }
        match self.reserved(s) {
            Some(a) if a == addr => {
                let m = self.answer(MessageType::Ack, s, addr, true);
                self.decision(Some(m), "ack (reserved address)", Change::None, Some(addr))
            }
            Some(_) => self.nak("the device has another reserved address", addr),
            None if self.cfg.reserved_for(addr).is_some() => {
                self.nak("requested address is reserved for a device", addr)
            }
            None if !s.in_pool(addr) => self.nak("requested address is not in a pool", addr),
            None if !self.free_for_client(addr) => {
                self.nak("requested address is leased to another client or declined", addr)
            }
            None => {
                let lease = self.lease_time();
                let m = self.answer(MessageType::Ack, s, addr, true);
                let change = Change::Bind {
                    addr,
                    client: self.client,
                    at: self.now,
                    expires: self.now + u64::from(lease),
                };
                self.decision(Some(m), "ack", change, Some(addr))
            }
        }
    }

    /// RFC 2131 §4.3.4: the address in ciaddr goes back to the pool. No reply.
    fn release(&self) -> Decision {
        let addr = self.msg.ciaddr();
        if self.server_id().is_some_and(|s| s != self.cfg.server_id) {
            return self.drop("RELEASE addressed to another server");
        }
        match self.leases.at(addr) {
            Some(l) if l.client == self.client && l.state == LeaseState::Bound => {
                let change = Change::Release { addr, client: self.client, at: self.now };
                self.decision(None, "released", change, Some(addr))
            }
            _ => self.drop("RELEASE of an address the client does not hold"),
        }
    }

    /// RFC 2131 §4.3.3: the client found the address in use; set it aside and tell the
    /// administrator. No reply.
    fn decline(&self) -> Decision {
        let Some(addr) = self.requested() else { return self.drop("DECLINE without an address") };
        if self.server_id().is_some_and(|s| s != self.cfg.server_id) {
            return self.drop("DECLINE addressed to another server");
        }
        let mine_reserved = self.device.and_then(|(_, d)| d.address) == Some(addr);
        let mine_leased = self.leases.at(addr).is_some_and(|l| l.client == self.client);
        let mut d = if mine_reserved {
            // A reserved address cannot move elsewhere: only the report is useful.
            self.decision(
                None,
                "declined its reserved address: another host uses it",
                Change::None,
                Some(addr),
            )
        } else if mine_leased {
            let change = Change::Decline { addr, until: self.now + DECLINE_HOLD_SECS };
            self.decision(None, "declined: another host uses the address", change, Some(addr))
        } else {
            return self.drop("DECLINE of an address the client was not given");
        };
        d.notable = true;
        d
    }

    /// RFC 2131 §4.3.5: configuration only: no yiaddr, no lease times, sent to ciaddr.
    fn inform(&self) -> Decision {
        let Some(s) = self.subnet(true) else { return self.drop("no served subnet for this link") };
        let m = self.answer(MessageType::Ack, s, Ipv4Addr::UNSPECIFIED, false);
        self.decision(Some(m), "ack (inform)", Change::None, None)
    }

    /// The subnet of the client's link: giaddr's if relayed (RFC 2131 §4.3.1), else for
    /// a REQUEST or INFORM from a configured client its ciaddr's, else the receiving
    /// address's.
    fn subnet(&self, use_ciaddr: bool) -> Option<&Subnet> {
        let g = self.msg.giaddr();
        let c = self.msg.ciaddr();
        let a = if !g.is_unspecified() {
            g
        } else if use_ciaddr && !c.is_unspecified() {
            c
        } else {
            self.local
        };
        self.cfg.subnet_of(a)
    }

    /// The device's own address, when it is on this subnet (dhcpd ignores a
    /// fixed-address off the client's network and allocates from the pools instead).
    fn reserved(&self, s: &Subnet) -> Option<Ipv4Addr> {
        self.device.and_then(|(_, d)| d.address).filter(|a| s.cidr.contains(*a))
    }

    fn free_for_client(&self, a: Ipv4Addr) -> bool {
        self.leases.at(a).is_none_or(|l| l.usable_by(&self.client, self.now))
    }

    fn pool_ok(&self, s: &Subnet, a: Ipv4Addr) -> bool {
        s.in_pool(a) && self.cfg.reserved_for(a).is_none() && self.free_for_client(a)
    }

    fn pick(&self, s: &Subnet) -> Option<Ipv4Addr> {
        if let Some(l) = self.leases.of_client(&self.client)
            && self.pool_ok(s, l.addr)
        {
            return Some(l.addr);
        }
        if let Some(r) = self.requested()
            && self.pool_ok(s, r)
        {
            return Some(r);
        }
        let skip = |a: Ipv4Addr| self.cfg.reserved_for(a).is_some();
        s.pools.iter().find_map(|&(f, l)| self.leases.next_free(f, l, &self.client, self.now, &skip))
    }

    fn requested(&self) -> Option<Ipv4Addr> {
        match self.msg.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
            _ => None,
        }
    }

    fn server_id(&self) -> Option<Ipv4Addr> {
        match self.msg.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
            _ => None,
        }
    }

    /// RFC 2131 §4.3.1: the client may ask for a lease time (option 51); it gets at most
    /// the fabric's maximum, and the default when it does not ask.
    fn lease_time(&self) -> u32 {
        match self.msg.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(t)) if *t > 0 => (*t).min(self.cfg.max_lease_time),
            _ => self.cfg.lease_time,
        }
    }

    /// Fields every reply copies from the request (RFC 2131 §4.3.1 table 3), the message
    /// type and server identifier, and the echoed client identifier (RFC 6842 §3) and
    /// relay agent information (RFC 3046 §2.2; dhcproto writes it last).
    fn header(&self, mt: MessageType) -> v4::Message {
        let q = self.msg;
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootReply)
            .set_htype(q.htype())
            .set_chaddr(q.chaddr())
            .set_xid(q.xid())
            .set_flags(q.flags())
            .set_giaddr(q.giaddr());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(mt));
        o.insert(DhcpOption::ServerIdentifier(self.cfg.server_id));
        for code in [OptionCode::ClientIdentifier, OptionCode::RelayAgentInformation] {
            if let Some(v) = q.opts().get(code) {
                o.insert(v.clone());
            }
        }
        m
    }

    /// An OFFER or ACK. `lease`: false for INFORM, which gets no lease times.
    fn answer(&self, mt: MessageType, s: &Subnet, yiaddr: Ipv4Addr, lease: bool) -> v4::Message {
        let mut m = self.header(mt);
        // siaddr stays 0.0.0.0, as from dhcpd.conf (no next-server) and Kea: every NOS
        // here finds its file server in option 66 or a URL (tests/tests/three_way.rs).
        m.set_yiaddr(yiaddr);
        if mt == MessageType::Ack {
            m.set_ciaddr(self.msg.ciaddr());
        }
        let o = m.opts_mut();
        if lease {
            // RFC 2131 §4.4.5: T1 defaults to half the lease, T2 to 7/8 of it.
            let t = self.lease_time();
            o.insert(DhcpOption::AddressLeaseTime(t));
            o.insert(DhcpOption::Renewal(t / 2));
            o.insert(DhcpOption::Rebinding((u64::from(t) * 7 / 8) as u32));
        }
        let target = Target { subnet: s, device: self.device.map(|(i, _)| i), platform: self.platform };
        options::fill(o, self.cfg, target, &self.wanted, lease);
        m
    }

    /// RFC 2131 §4.3.2: a NAK carries no address or configuration; through a relay it
    /// asks for a broadcast, since the client has no usable address.
    fn nak(&self, why: &'static str, addr: Ipv4Addr) -> Decision {
        let mut m = self.header(MessageType::Nak);
        if !self.msg.giaddr().is_unspecified() {
            m.set_flags(self.msg.flags().set_broadcast());
        }
        m.opts_mut().insert(DhcpOption::Message(why.to_string()));
        self.decision(Some(m), why, Change::None, Some(addr))
    }
}
