//! Pool leases in memory: who holds which address until when, the read-only view that
//! the reply function decides with, and the changes it asks for.
//!
//! Reserved (fixed) addresses never appear here: they live in the generation. What is
//! here is persisted through [`crate::dhcp::journal`], except offers, which RFC 2131
//! §4.3.1 only asks a server to hold for a while and which are worth nothing after a
//! restart (the client starts over with a DISCOVER).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use dhcproto::v4::{self, DhcpOption, OptionCode};

/// How long an offered address stays set aside for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long a declined address (RFC 2131 §4.3.3: someone else is using it) is not handed
/// out again.
pub const DECLINE_HOLD_SECS: u64 = 3600;

/// The longest client identifier kept verbatim; longer ones are hashed (SHA-256).
const KEY_MAX: usize = 64;

/// Identifies a client (RFC 2131 §4.2): option 61 if sent, else htype + chaddr. Kept
/// inline, so that looking a client up costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    len: u8,
    /// bytes[0] says what follows: 0 = option 61, 1 = htype + chaddr, 2 = SHA-256 of a
    /// long option 61. No key for declined addresses has len 0.
    bytes: [u8; KEY_MAX + 1],
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl ClientKey {
    /// The key of nobody: declined addresses belong to no client.
    pub const NONE: ClientKey = ClientKey { len: 0, bytes: [0; KEY_MAX + 1] };

    pub fn of(msg: &v4::Message) -> ClientKey {
        match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => ClientKey::tagged(0, id),
            _ => {
                let mut hw = [0u8; 17];
                hw[0] = u8::from(msg.htype());
                let ch = msg.chaddr();
                let n = ch.len().min(16);
                hw[1..=n].copy_from_slice(&ch[..n]);
                ClientKey::tagged(1, &hw[..=n])
            }
        }
    }

    fn tagged(tag: u8, id: &[u8]) -> ClientKey {
        let mut k = ClientKey::NONE;
        if id.len() <= KEY_MAX {
            k.bytes[0] = tag;
            k.bytes[1..=id.len()].copy_from_slice(id);
            k.len = id.len() as u8 + 1;
        } else {
            use sha2::Digest;
            k.bytes[0] = 2;
            k.bytes[1..33].copy_from_slice(&sha2::Sha256::digest(id));
            k.len = 33;
        }
        k
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn to_hex(&self) -> String {
        if self.len == 0 {
            return "-".into();
        }
        self.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The inverse of [`ClientKey::to_hex`], for reading the journal.
    pub fn from_hex(s: &str) -> Option<ClientKey> {
        if s == "-" {
            return Some(ClientKey::NONE);
        }
        if !s.len().is_multiple_of(2) || s.len() / 2 > KEY_MAX + 1 || s.len() < 2 {
            return None;
        }
        let mut k = ClientKey::NONE;
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).ok()?;
            k.bytes[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        k.len = (s.len() / 2) as u8;
        Some(k)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered, not yet requested: memory only.
    Offered,
    /// Acknowledged: persisted before the ACK leaves.
    Bound,
    /// Declined by a client: nobody's until `expires`.
    Declined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub client: ClientKey,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

impl Lease {
    /// Whether `client` may have this address now: it is the holder (and has not
    /// declined it), or whatever held it has run out.
    pub fn usable_by(&self, client: &ClientKey, now: u64) -> bool {
        (self.client == *client && self.state != LeaseState::Declined) || self.expires <= now
    }
}

/// What the reply function reads: the leases as of this packet.
pub trait LeaseView {
    fn at(&self, addr: Ipv4Addr) -> Option<&Lease>;
    /// The client's latest lease (any state, possibly expired), if it still holds it.
    fn of_client(&self, client: &ClientKey) -> Option<&Lease>;
    /// A pool address in `first..=last` that `client` may have now and `skip` does not
    /// exclude (reserved addresses). Scans round-robin from where the last search in the
    /// same range stopped, so that addresses are reused as late as possible.
    fn next_free(
        &self,
        first: u32,
        last: u32,
        client: &ClientKey,
        now: u64,
        skip: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr>;
}

/// A lease change the reply function asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// Set the address aside for the client (not persisted).
    Offer {
        addr: Ipv4Addr,
        client: ClientKey,
        until: u64,
    },
    /// The client chose another server's offer (RFC 2131 §4.3.2): release our offer.
    Withdraw {
        client: ClientKey,
    },
    /// Acknowledged: must be durable before the ACK is sent.
    Bind {
        addr: Ipv4Addr,
        client: ClientKey,
        at: u64,
        expires: u64,
    },
    Release {
        addr: Ipv4Addr,
        client: ClientKey,
        at: u64,
    },
    Decline {
        addr: Ipv4Addr,
        until: u64,
    },
}

/// A persisted lease event, one journal line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub op: Op,
    pub addr: Ipv4Addr,
    pub client: ClientKey,
    /// Bind: expiry; Free: when; Decline: until.
    pub time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Bind,
    Free,
    Decline,
}

#[derive(Debug, Default)]
pub struct LeaseTable {
    by_addr: HashMap<Ipv4Addr, Lease>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    /// Round-robin position per pool (keyed by the pool's first address). A hint only,
    /// so it may change behind `&self`.
    cursors: Mutex<HashMap<u32, u32>>,
}

impl LeaseTable {
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_addr.values()
    }

    /// Apply a change; the records that make it durable are appended to `out`.
    pub fn apply(&mut self, change: Change, out: &mut Vec<Record>) {
        match change {
            Change::None => {}
            Change::Offer { addr, client, until } => {
                // An address the client already holds keeps its state: offering it again
                // must not turn a bound lease back into an offer.
                if self.by_addr.get(&addr).is_some_and(|l| l.client == client && l.state == LeaseState::Bound)
                {
                    return;
                }
                self.put(Lease { addr, client, state: LeaseState::Offered, expires: until });
            }
            Change::Withdraw { client } => {
                if let Some(&a) = self.by_client.get(&client)
                    && self
                        .by_addr
                        .get(&a)
                        .is_some_and(|l| l.client == client && l.state == LeaseState::Offered)
                {
                    self.by_addr.remove(&a);
                    self.by_client.remove(&client);
                }
            }
            Change::Bind { addr, client, at, expires } => {
                // A client holds one address: a bound lease it had elsewhere is freed.
                if let Some(&old) = self.by_client.get(&client)
                    && old != addr
                    && let Some(l) = self.by_addr.get_mut(&old)
                    && l.client == client
                    && l.state == LeaseState::Bound
                {
                    l.expires = l.expires.min(at);
                    out.push(Record { op: Op::Free, addr: old, client, time: l.expires });
                }
                self.put(Lease { addr, client, state: LeaseState::Bound, expires });
                out.push(Record { op: Op::Bind, addr, client, time: expires });
            }
            Change::Release { addr, client, at } => {
                if let Some(l) = self.by_addr.get_mut(&addr)
                    && l.client == client
                {
                    // RFC 2131 §4.3.4: the binding is kept as a hint (the client gets the
                    // same address back if still free), but the address is free now.
                    l.expires = l.expires.min(at);
                    out.push(Record { op: Op::Free, addr, client, time: l.expires });
                }
            }
            Change::Decline { addr, until } => {
                self.put(Lease {
                    addr,
                    client: ClientKey::NONE,
                    state: LeaseState::Declined,
                    expires: until,
                });
                out.push(Record { op: Op::Decline, addr, client: ClientKey::NONE, time: until });
            }
        }
    }

    /// Replay one journal record (at start).
    pub fn replay(&mut self, r: &Record) {
        match r.op {
            Op::Bind => {
                self.put(Lease { addr: r.addr, client: r.client, state: LeaseState::Bound, expires: r.time })
            }
            Op::Free => {
                if let Some(l) = self.by_addr.get_mut(&r.addr)
                    && l.client == r.client
                {
                    l.expires = l.expires.min(r.time);
                }
            }
            Op::Decline => self.put(Lease {
                addr: r.addr,
                client: ClientKey::NONE,
                state: LeaseState::Declined,
                expires: r.time,
            }),
        }
    }

    /// Everything worth keeping, as journal records: bound leases (expired ones too, as
    /// the client's preferred address) and declines still in force. Offers are dropped.
    pub fn snapshot(&self, now: u64) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .by_addr
            .values()
            .filter_map(|l| match l.state {
                LeaseState::Bound => {
                    Some(Record { op: Op::Bind, addr: l.addr, client: l.client, time: l.expires })
                }
                LeaseState::Declined if l.expires > now => {
                    Some(Record { op: Op::Decline, addr: l.addr, client: l.client, time: l.expires })
                }
                _ => None,
            })
            .collect();
        v.sort_by_key(|r| (r.addr, r.time));
        v
    }

    fn put(&mut self, l: Lease) {
        if let Some(prev) = self.by_addr.insert(l.addr, l)
            && prev.client != l.client
            && self.by_client.get(&prev.client) == Some(&l.addr)
        {
            self.by_client.remove(&prev.client);
        }
        if l.client != ClientKey::NONE {
            self.by_client.insert(l.client, l.addr);
        }
    }
}

impl LeaseView for LeaseTable {
    fn at(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr)
    }

    fn of_client(&self, client: &ClientKey) -> Option<&Lease> {
        let a = self.by_client.get(client)?;
        self.by_addr.get(a).filter(|l| l.client == *client)
    }

    fn next_free(
        &self,
        first: u32,
        last: u32,
        client: &ClientKey,
        now: u64,
        skip: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        if first > last {
            return None;
        }
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let start = cursors.get(&first).copied().filter(|c| (first..=last).contains(c)).unwrap_or(first);
        let size = u64::from(last - first) + 1;
        let mut a = start;
        for _ in 0..size {
            let ip = Ipv4Addr::from(a);
            let free = self.by_addr.get(&ip).is_none_or(|l| l.usable_by(client, now));
            if free && !skip(ip) {
                cursors.insert(first, if a == last { first } else { a + 1 });
                return Some(ip);
            }
            a = if a == last { first } else { a + 1 };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ClientKey {
        ClientKey::tagged(1, &[1, 0, 0, 0, 0, 0, n])
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let k = ClientKey::tagged(0, b"SONiC##E1031##E1031B2F035A17GD020");
        assert_eq!(ClientKey::from_hex(&k.to_hex()), Some(k));
        let long = ClientKey::tagged(0, &[7u8; 200]);
        assert_eq!(long.as_bytes().len(), 33);
        assert_eq!(ClientKey::from_hex("-"), Some(ClientKey::NONE));
        assert_eq!(ClientKey::from_hex("0"), None);
        assert_eq!(ClientKey::from_hex("zz"), None);
    }

    #[test]
    fn next_free_skips_taken_and_round_robins() {
        let mut t = LeaseTable::default();
        let first = u32::from(Ipv4Addr::new(10, 0, 0, 1));
        let mut out = Vec::new();
        t.apply(
            Change::Bind { addr: Ipv4Addr::new(10, 0, 0, 1), client: key(1), at: 0, expires: 100 },
            &mut out,
        );
        let none = |_: Ipv4Addr| false;
        let a = t.next_free(first, first + 2, &key(2), 50, &none);
        assert_eq!(a, Some(Ipv4Addr::new(10, 0, 0, 2)));
        let b = t.next_free(first, first + 2, &key(2), 50, &none);
        assert_eq!(b, Some(Ipv4Addr::new(10, 0, 0, 3)), "the cursor moved on");
        let skip3 = |a: Ipv4Addr| a == Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(t.next_free(first, first + 2, &key(2), 50, &skip3), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(t.next_free(first, first, &key(2), 50, &none), None, "held by key(1)");
        assert_eq!(
            t.next_free(first, first, &key(2), 100, &none),
            Some(Ipv4Addr::new(10, 0, 0, 1)),
            "expired"
        );
    }

    #[test]
    fn rebinding_elsewhere_frees_the_old_address() {
        let mut t = LeaseTable::default();
        let mut out = Vec::new();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        t.apply(Change::Bind { addr: a, client: key(1), at: 0, expires: 100 }, &mut out);
        t.apply(Change::Bind { addr: b, client: key(1), at: 50, expires: 200 }, &mut out);
        assert_eq!(out.iter().map(|r| r.op).collect::<Vec<_>>(), [Op::Bind, Op::Free, Op::Bind]);
        assert!(t.at(a).unwrap().usable_by(&key(2), 100));
        assert_eq!(t.of_client(&key(1)).map(|l| l.addr), Some(b));
    }
}
