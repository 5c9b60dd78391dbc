//! The clients of the three-way comparison (every device of a fabric, and an unknown
//! device of each platform) and the comparison of what each server answered them.
//!
//! Must be equal across the servers, in the OFFER and in the ACK: the message type,
//! yiaddr, siaddr, `file`, `sname`, and every option the client's platform reads (its
//! parameter request list plus 1, 51 and 54; support/nos.rs). Option 119 is compared by
//! the names it carries (RFC 3397 allows a list with or without RFC 1035 compression;
//! dhcpd compresses, Kea and ztp-runtime do not). A reserved address must be the
//! device's; a pool address may differ between servers (each picks its own free
//! address) but must then be inside the same subnet's pools and reserved for nobody.
//! Options no platform here reads (T1/T2, the echoed 61) are reported, not failed.
//! Finally the agreed answer is checked against the fabric: reserved address, host name
//! and the boot value in the option the platform reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;
use ztpc::platform::Platform;
use ztpc::render::manifest::{IdentityKind, Manifest};

use super::nos;
use super::relay_client::{Client, Reply};
use super::servers::Kind;

/// One client of the comparison.
pub struct Case {
    pub label: String,
    pub platform: Platform,
    /// Index into the manifest's devices, for a device of the fabric.
    pub device: Option<usize>,
    pub subnet: usize,
    pub client: Client,
}

/// Each server's (OFFER, ACK) per case, or why there was none.
pub type Answers = BTreeMap<Kind, Vec<Result<(Reply, Reply), String>>>;

/// The relay's address on subnet `i`: its router (where a relay agent lives), else the
/// first host address.
pub fn giaddr(m: &Manifest, i: usize) -> Ipv4Addr {
    let s = &m.dhcp.subnets[i];
    s.router.unwrap_or(Ipv4Addr::from(s.cidr.first() + 1))
}

/// The subnet the ZTP server is on.
pub fn home(m: &Manifest) -> usize {
    m.dhcp
        .subnets
        .iter()
        .position(|s| s.cidr.contains(m.server.address))
        .expect("the examples' ztp-server is on one of their subnets")
}

/// A MAC no example reserves (locally administered), numbered.
fn stranger(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xa9, b[0], b[1], b[2], b[3]]
}

pub fn cases(m: &Manifest) -> Vec<Case> {
    let mut v = Vec::new();
    let home = home(m);
    for (i, d) in m.devices.iter().enumerate() {
        // A device is cabled where its address is; one with none asks on the server's.
        let subnet =
            d.address.and_then(|a| m.dhcp.subnets.iter().position(|s| s.cidr.contains(a))).unwrap_or(home);
        let n = i as u32 + 1;
        let mac = d.mac.map(|x| x.0).unwrap_or(stranger(n));
        // Every NOS but Cumulus reports a serial; a device without one in the fabric
        // reports one the fabric does not know.
        let serial = d.serial.clone().unwrap_or(format!("ZZNOSERIAL{n:02}"));
        let loc = d.location.as_ref();
        v.push(Case {
            label: format!("{} ({}, by {:?})", d.name, d.platform, d.dhcp_identity),
            platform: d.platform,
            device: Some(i),
            subnet,
            client: Client {
                id: nos::identity(d.platform, mac, &serial, d.model.as_deref()),
                xid: n,
                giaddr: Some(giaddr(m, subnet)),
                circuit_id: loc.map(|l| l.circuit_id.clone().into_bytes()),
                remote_id: loc.and_then(|l| l.remote_id.clone()).map(String::into_bytes),
            },
        });
    }
    // One unknown device per platform, spread over the subnets.
    for (k, p) in Platform::ALL.into_iter().enumerate() {
        let n = 100 + k as u32;
        let subnet = (home + k) % m.dhcp.subnets.len();
        let label = format!("unknown {p} via {}", m.dhcp.subnets[subnet].cidr);
        v.push(unknown(label, p, n, subnet, Some(giaddr(m, subnet))));
    }
    // The server's own subnet again, on its link without a relay: the devices with a
    // reserved address there (a device known by location has no location on that
    // link), and new unknown devices. A client that already holds a pool lease is not
    // asked twice: dhcpd then offers what is left of the lease (a second less, at a
    // second boundary), Kea and ztp-runtime a whole one.
    let mut direct = Vec::new();
    for c in v.iter().filter(|c| c.subnet == home && c.client.circuit_id.is_none()) {
        if let Some(d) = c.device.map(|i| &m.devices[i]).filter(|d| d.address.is_some()) {
            let mut client = c.client.clone();
            client.giaddr = None;
            let label = format!("{} on the server's link", c.label);
            direct.push(Case { label, platform: d.platform, device: c.device, subnet: home, client });
        }
    }
    for (k, p) in Platform::ALL.into_iter().enumerate() {
        direct.push(unknown(format!("unknown {p} on the server's link"), p, 200 + k as u32, home, None));
    }
    v.extend(direct);
    v
}

fn unknown(label: String, p: Platform, n: u32, subnet: usize, giaddr: Option<Ipv4Addr>) -> Case {
    Case {
        label,
        platform: p,
        device: None,
        subnet,
        client: Client {
            id: nos::identity(p, stranger(n), &format!("ZZUNKNOWN{n}"), None),
            xid: n,
            giaddr,
            circuit_id: None,
            remote_id: None,
        },
    }
}

/// The outcome of a comparison.
#[derive(Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    /// Differences in what no platform reads: description → (clients, an example).
    pub notes: BTreeMap<String, (usize, String)>,
    /// Who got what: ACK yiaddr and the boot option, one line per case.
    pub table: String,
}

impl Verdict {
    fn note(&mut self, key: String, example: String) {
        let e = self.notes.entry(key).or_insert((0, example));
        e.0 += 1;
    }
}

pub fn compare(m: &Manifest, cases: &[Case], answers: &Answers) -> Verdict {
    let mut v = Verdict::default();
    for (i, c) in cases.iter().enumerate() {
        let mut got: BTreeMap<Kind, (&Reply, &Reply)> = BTreeMap::new();
        for (kind, list) in answers {
            match &list[i] {
                Ok((offer, ack)) => {
                    got.insert(*kind, (offer, ack));
                }
                Err(e) => v.problems.push(format!("{}: {} gave no lease: {e}", c.label, kind.name())),
            }
        }
        if got.len() == Kind::ALL.len() {
            one(m, c, &got, &mut v);
        }
    }
    v
}

/// Compare the three servers' answers to one client.
fn one(m: &Manifest, c: &Case, got: &BTreeMap<Kind, (&Reply, &Reply)>, v: &mut Verdict) {
    let device = c.device.map(|d| &m.devices[d]);
    let identified = device.filter(|d| d.dhcp_identity != IdentityKind::ScriptOnly);
    let subnet = &m.dhcp.subnets[c.subnet];
    for (kind, (offer, ack)) in got {
        let k = kind.name();
        if ack.kind() != Some(MessageType::Ack) {
            v.problems.push(format!("{}: {k} answered the REQUEST with {:?}", c.label, ack.kind()));
        }
        if offer.yiaddr != ack.yiaddr {
            v.problems
                .push(format!("{}: {k} offered {} but acknowledged {}", c.label, offer.yiaddr, ack.yiaddr));
        }
    }
    // The address.
    match identified.and_then(|d| d.address).filter(|a| subnet.cidr.contains(*a)) {
        Some(want) => {
            for (kind, (_, ack)) in got.iter().filter(|(_, (_, a))| a.yiaddr != want) {
                v.problems.push(format!(
                    "{}: {} gave {}, not its reserved {want}",
                    c.label,
                    kind.name(),
                    ack.yiaddr
                ));
            }
        }
        None => {
            let reserved = |a: Ipv4Addr| m.devices.iter().any(|d| d.address == Some(a));
            for (kind, (_, ack)) in got {
                let a = ack.yiaddr;
                if !subnet.pools.iter().any(|p| p.contains(a)) || reserved(a) {
                    let (k, s) = (kind.name(), subnet.cidr);
                    v.problems.push(format!("{}: {k} gave {a}, not a free address of {s}'s pools", c.label));
                }
            }
            let addrs: BTreeSet<Ipv4Addr> = got.values().map(|(_, a)| a.yiaddr).collect();
            if addrs.len() > 1 {
                let each = got.iter().map(|(k, (_, a))| format!("{} {}", k.name(), a.yiaddr));
                let key = "pool addresses differ, each inside the same subnet's pools".to_string();
                v.note(key, format!("{}: {}", c.label, each.collect::<Vec<_>>().join(", ")));
            }
        }
    }
    // Header fields and options, OFFER and ACK.
    let reads = nos::reads(c.platform);
    for (stage, ack) in [("OFFER", false), ("ACK", true)] {
        let pick = |r: &(&Reply, &Reply)| if ack { r.1.clone() } else { r.0.clone() };
        let replies: Vec<(Kind, Reply)> = got.iter().map(|(k, r)| (*k, pick(r))).collect();
        let fields: [(&str, Field); 3] = [
            ("siaddr", |r| r.siaddr.octets().to_vec()),
            ("file", |r| r.file.clone()),
            ("sname", |r| r.sname.clone()),
        ];
        for (field, get) in fields {
            let vals: Vec<Option<Vec<u8>>> = replies.iter().map(|(_, r)| Some(get(r))).collect();
            if !all_equal(&vals) {
                v.problems.push(format!("{}: {stage} {field}: {}", c.label, each(&replies, &vals)));
            }
        }
        let codes: BTreeSet<u8> = replies
            .iter()
            .flat_map(|(_, r)| r.options.keys().copied())
            .chain(reads.iter().copied())
            .collect();
        for code in codes {
            let vals: Vec<Option<Vec<u8>>> =
                replies.iter().map(|(_, r)| r.options.get(&code).cloned()).collect();
            if all_equal(&vals) {
                continue;
            }
            let line = format!("{}: {stage} option {code}: {}", c.label, each(&replies, &vals));
            let meanings: Vec<Option<String>> =
                vals.iter().map(|x| x.as_deref().map(|b| meaning(code, b))).collect();
            if all_equal(&meanings) {
                v.note(format!("option {code}: the same value, encoded differently"), line);
            } else if reads.contains(&code) || code == 53 {
                v.problems.push(line);
            } else {
                v.note(
                    format!("option {code} (no platform here reads it): {}", pattern(&replies, &vals)),
                    line,
                );
            }
        }
    }
    // The agreed answer is the fabric's.
    let ack = got[&Kind::Runtime].1;
    let boot_value = match identified {
        Some(d) => d.boot_value.clone(),
        None => m.platforms.iter().find(|p| p.platform == c.platform).expect("platform").boot_value.clone(),
    };
    let (code, want) = boot_option(c.platform, &boot_value);
    if ack.options.get(&code) != Some(&want) {
        let shown = show(ack.options.get(&code).map(Vec::as_slice));
        v.problems.push(format!("{}: option {code} is {shown}, the fabric says {boot_value:?}", c.label));
    }
    match identified {
        Some(d) if ack.options.get(&12).map(Vec::as_slice) != Some(d.name.as_bytes()) => {
            let shown = show(ack.options.get(&12).map(Vec::as_slice));
            v.problems.push(format!("{}: host name {shown}, the fabric says {:?}", c.label, d.name));
        }
        None if ack.options.contains_key(&12) => {
            v.problems.push(format!("{}: a host name for a device the fabric does not name", c.label));
        }
        _ => {}
    }
    let shown = show(ack.options.get(&code).map(Vec::as_slice));
    let _ = writeln!(v.table, "  {:<50} {:<15} {code}={shown}", c.label, ack.yiaddr);
}

/// A BOOTP header field of a reply.
type Field = fn(&Reply) -> Vec<u8>;

fn all_equal<T: PartialEq>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] == w[1])
}

/// `dhcpd X, kea Y, ztp-runtime Z`.
fn each(replies: &[(Kind, Reply)], vals: &[Option<Vec<u8>>]) -> String {
    let shown = replies.iter().zip(vals).map(|((k, _), x)| format!("{} {}", k.name(), show(x.as_deref())));
    shown.collect::<Vec<_>>().join(", ")
}

/// Which servers sent the same value: `dhcpd -, kea A, ztp-runtime A`.
fn pattern(replies: &[(Kind, Reply)], vals: &[Option<Vec<u8>>]) -> String {
    let mut seen: Vec<&Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    for ((k, _), x) in replies.iter().zip(vals) {
        let tag = match x {
            None => "-".to_string(),
            Some(b) => {
                let i = seen.iter().position(|s| *s == b).unwrap_or_else(|| {
                    seen.push(b);
                    seen.len() - 1
                });
                char::from(b'A' + i as u8).to_string()
            }
        };
        out.push(format!("{} {tag}", k.name()));
    }
    out.join(", ")
}

/// The option a platform's bootstrap script name or URL arrives in, and its bytes
/// (nos-dhcp.md): Junos 43 sub-option 1, EOS and NX-OS 67, SONiC and Cumulus 239.
fn boot_option(p: Platform, value: &str) -> (u8, Vec<u8>) {
    match p {
        Platform::Junos | Platform::JunosEvo => {
            (43, [&[1u8, value.len() as u8][..], value.as_bytes()].concat())
        }
        Platform::Eos | Platform::Nxos => (67, value.as_bytes().to_vec()),
        Platform::Sonic | Platform::Cumulus => (239, value.as_bytes().to_vec()),
    }
}

/// What an option's bytes mean, where one value has several encodings.
fn meaning(code: u8, b: &[u8]) -> String {
    if code == 119 {
        return domain_list(b).map(|v| v.join(",")).unwrap_or_else(|| format!("undecodable {b:02x?}"));
    }
    show(Some(b))
}

/// An RFC 1035 name list with compression pointers (RFC 3397). A pointer loop or a
/// truncated name gives None.
fn domain_list(b: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (mut labels, mut at, mut next, mut hops) = (Vec::new(), i, None, 0);
        loop {
            let len = usize::from(*b.get(at)?);
            if len == 0 {
                next.get_or_insert(at + 1);
                break;
            }
            if len & 0xc0 == 0xc0 {
                next.get_or_insert(at + 2);
                at = ((len & 0x3f) << 8) | usize::from(*b.get(at + 1)?);
                hops += 1;
                if hops > 64 {
                    return None;
                }
                continue;
            }
            labels.push(String::from_utf8_lossy(b.get(at + 1..at + 1 + len)?).into_owned());
            at += 1 + len;
        }
        names.push(labels.join("."));
        i = next?;
    }
    Some(names)
}

/// Printable text quoted, anything else in hex, `-` for absent.
pub fn show(v: Option<&[u8]>) -> String {
    match v {
        None => "-".into(),
        Some(b) if b.iter().all(|c| (0x20..0x7f).contains(c)) => format!("{:?}", String::from_utf8_lossy(b)),
        Some(b) => b.iter().map(|c| format!("{c:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_lists_decode_with_and_without_compression() {
        let plain = b"\x06campus\x07example\x03net\x00\x07example\x03net\x00";
        let packed = b"\x06campus\x07example\x03net\x00\xc0\x07";
        let want = vec!["campus.example.net".to_string(), "example.net".to_string()];
        assert_eq!(domain_list(plain), Some(want.clone()));
        assert_eq!(domain_list(packed), Some(want));
        assert_eq!(domain_list(b"\xc0\x00"), None, "a pointer loop");
        assert_eq!(domain_list(b"\x05ab"), None, "truncated");
    }
}
