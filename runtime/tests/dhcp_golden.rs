//! The reply function gives every device and every platform exactly the options and
//! address that the golden dhcpd.conf gives the same client. The expectations are read
//! from golden/<fabric>/dhcpd.conf itself (hosts, device classes, platform classes,
//! subnets, group and global options), not from the manifest the server uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dhcp_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;
use support::{config, ip, looks_like, manifest, q, repo, stranger, wire_opts};
use ztp_runtime::dhcp::leases::LeaseTable;
use ztp_runtime::dhcp::reply::reply;
use ztpc::render::manifest::IdentityKind;

#[derive(Debug, Default, Clone)]
struct Scope {
    opts: BTreeMap<String, String>,
    mac: Option<String>,
    fixed: Option<Ipv4Addr>,
    allow: Option<String>,
    range: Option<(Ipv4Addr, Ipv4Addr)>,
}

#[derive(Debug)]
struct Subnet {
    network: Ipv4Addr,
    mask: Ipv4Addr,
    scope: Scope,
    pools: Vec<Scope>,
}

impl Subnet {
    fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & u32::from(self.mask) == u32::from(self.network)
    }
}

#[derive(Debug, Default)]
struct Conf {
    global: Scope,
    group: Scope,
    subnets: Vec<Subnet>,
    hosts: BTreeMap<String, Scope>,
    classes: BTreeMap<String, Scope>,
}

enum Block {
    Class(String),
    Group,
    Subnet,
    Pool,
    Host(String),
}

fn quoted(s: &str) -> String {
    s.split('"').nth(1).unwrap().to_string()
}

/// A line-based reader for the dhcpd.conf layout ztpc writes (enough for this test).
fn parse(text: &str) -> Conf {
    let mut c = Conf::default();
    let mut stack: Vec<Block> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            stack.pop();
            continue;
        }
        if line.ends_with('{') || line.starts_with("pool {") {
            let b = if line.starts_with("class ") {
                Block::Class(quoted(line))
            } else if line.starts_with("group") {
                Block::Group
            } else if let Some(rest) = line.strip_prefix("subnet ") {
                let w: Vec<&str> = rest.split_whitespace().collect();
                c.subnets.push(Subnet {
                    network: ip(w[0]),
                    mask: ip(w[2]),
                    scope: Scope::default(),
                    pools: Vec::new(),
                });
                Block::Subnet
            } else if line.starts_with("pool") {
                c.subnets.last_mut().unwrap().pools.push(Scope::default());
                Block::Pool
            } else if let Some(rest) = line.strip_prefix("host ") {
                Block::Host(rest.trim_end_matches('{').trim().to_string())
            } else {
                panic!("unexpected block {line}");
            };
            stack.push(b);
            continue;
        }
        let scope: &mut Scope = match stack.last() {
            None => &mut c.global,
            Some(Block::Group) => &mut c.group,
            Some(Block::Subnet) => &mut c.subnets.last_mut().unwrap().scope,
            Some(Block::Pool) => c.subnets.last_mut().unwrap().pools.last_mut().unwrap(),
            Some(Block::Class(n)) => c.classes.entry(n.clone()).or_default(),
            Some(Block::Host(n)) => c.hosts.entry(n.clone()).or_default(),
        };
        let body = line.trim_end_matches(';');
        if let Some(rest) = body.strip_prefix("option ") {
            if rest.contains(" code ") || rest.starts_with("space ") {
                continue;
            }
            let (name, value) = rest.split_once(' ').unwrap();
            scope.opts.insert(name.to_string(), value.to_string());
        } else if let Some(m) = body.strip_prefix("hardware ethernet ") {
            scope.mac = Some(m.to_string());
        } else if let Some(a) = body.strip_prefix("fixed-address ") {
            scope.fixed = Some(ip(a));
        } else if let Some(r) = body.strip_prefix("range ") {
            let (a, b) = r.split_once(' ').unwrap();
            scope.range = Some((ip(a), ip(b)));
        } else if body.starts_with("allow members of") {
            scope.allow = Some(quoted(body));
        }
    }
    c
}

/// dhcpd's text value: "quoted" or colon-separated hex.
fn text(v: &str) -> Vec<u8> {
    if v.starts_with('"') {
        quoted(v).into_bytes()
    } else {
        v.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
    }
}

fn ip_list(v: &str) -> Vec<u8> {
    v.split(", ").flat_map(|a| ip(a).octets()).collect()
}

/// RFC 1035 §3.1, written out independently of the server's encoder.
fn names(v: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for n in v.split(", ").map(quoted) {
        for l in n.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }
    out
}

/// Turns dhcpd.conf value text into option data.
type Conv = fn(&str) -> Vec<u8>;

/// What dhcpd sends a client in `subnet` matched by `device` (a host or device class)
/// and `platform` (a platform class): innermost scope wins per option.
fn expected(
    c: &Conf,
    subnet: &Subnet,
    device: Option<&Scope>,
    platform: Option<&Scope>,
) -> BTreeMap<u8, Vec<u8>> {
    let scopes: Vec<&Scope> = [device, platform, Some(&subnet.scope), Some(&c.group), Some(&c.global)]
        .into_iter()
        .flatten()
        .collect();
    let find = |name: &str| scopes.iter().find_map(|s| s.opts.get(name));
    let mut out = BTreeMap::new();
    out.insert(1, subnet.mask.octets().to_vec());
    let table: [(&str, u8, Conv); 10] = [
        ("routers", 3, ip_list),
        ("domain-name-servers", 6, ip_list),
        ("host-name", 12, text),
        ("domain-name", 15, text),
        ("ntp-servers", 42, ip_list),
        ("tftp-server-name", 66, text),
        ("bootfile-name", 67, text),
        ("domain-search", 119, names),
        ("ztp-provision-url", 239, text),
        ("JUNIPER.config-file-name", 43, |v| {
            let t = text(v);
            [vec![1, t.len() as u8], t].concat()
        }),
    ];
    for (name, code, conv) in table {
        if let Some(v) = find(name) {
            out.insert(code, conv(v));
        }
    }
    out
}

/// The configuration options of a reply (no protocol or lease options).
fn config_opts(m: &dhcproto::v4::Message) -> BTreeMap<u8, Vec<u8>> {
    let mut o = wire_opts(m);
    o.retain(|c, _| [1, 3, 6, 12, 15, 42, 43, 66, 67, 119, 239].contains(c));
    o
}

/// A relay address on the subnet (its router, as a relay agent usually is).
fn relay_of(s: &Subnet) -> Ipv4Addr {
    s.scope
        .opts
        .get("routers")
        .map(|r| ip(r.split(", ").next().unwrap()))
        .unwrap_or(Ipv4Addr::from(u32::from(s.network) + 1))
}

fn check_fabric(fabric: &str) {
    let conf =
        parse(&std::fs::read_to_string(repo().join("golden").join(fabric).join("dhcpd.conf")).unwrap());
    let m = manifest(fabric);
    let cfg = config(fabric);
    let leases = LeaseTable::default();
    let now = 1_000_000;
    let mut checked = 0;
    for (n, d) in m.devices.iter().enumerate() {
        let subnet =
            d.address.and_then(|a| conf.subnets.iter().find(|s| s.contains(a))).unwrap_or(&conf.subnets[0]);
        let giaddr = relay_of(subnet);
        let (scope, req) = match d.dhcp_identity {
            IdentityKind::Mac => {
                let host = &conf.hosts[&d.name];
                let mac = d.mac.unwrap().0;
                assert_eq!(host.mac.as_deref(), Some(d.mac.unwrap().to_string().as_str()));
                (host, looks_like(q(MessageType::Discover, mac), d.platform, None).relay(giaddr, None, None))
            }
            IdentityKind::Location => {
                let l = d.location.as_ref().unwrap();
                let req = looks_like(q(MessageType::Discover, stranger(n as u32)), d.platform, None);
                (
                    &conf.classes[&format!("device-{}", d.name)],
                    req.relay(giaddr, l.remote_id.as_deref(), Some(&l.circuit_id)),
                )
            }
            IdentityKind::Serial => {
                let req =
                    looks_like(q(MessageType::Discover, stranger(n as u32)), d.platform, d.serial.as_deref());
                (&conf.classes[&format!("device-{}", d.name)], req.relay(giaddr, None, None))
            }
            IdentityKind::ScriptOnly => continue,
        };
        let platform_class =
            conf.classes.get(&m.platforms.iter().find(|p| p.platform == d.platform).unwrap().class);
        let dec = reply(&cfg, &leases, &req.build(), now);
        let got = dec.reply.as_ref().unwrap_or_else(|| panic!("{fabric}/{}: no reply ({})", d.name, dec.why));
        assert_eq!(dec.device, Some(n), "{fabric}/{}: recognised", d.name);
        assert_eq!(
            config_opts(got),
            expected(&conf, subnet, Some(scope), platform_class),
            "{fabric}/{}: options",
            d.name
        );
        let pinned = subnet.pools.iter().find(|p| p.allow.as_deref() == Some(&format!("device-{}", d.name)));
        let want = scope.fixed.or(pinned.and_then(|p| p.range).map(|r| r.0));
        match want {
            Some(a) => assert_eq!(got.yiaddr(), a, "{fabric}/{}: reserved address", d.name),
            None => assert!(
                subnet
                    .pools
                    .iter()
                    .filter(|p| p.allow.is_none())
                    .any(|p| p.range.is_some_and(|(f, l)| f <= got.yiaddr() && got.yiaddr() <= l)),
                "{fabric}/{}: a pool address, got {}",
                d.name,
                got.yiaddr()
            ),
        }
        checked += 1;
    }
    assert!(checked > 0);
    // Every platform class, for a switch that is no device of the fabric.
    for (i, p) in m.platforms.iter().enumerate() {
        let subnet = &conf.subnets[0];
        let req = looks_like(q(MessageType::Discover, stranger(1000 + i as u32)), p.platform, None).relay(
            relay_of(subnet),
            None,
            None,
        );
        let dec = reply(&cfg, &leases, &req.build(), now);
        assert_eq!(dec.platform, Some(p.platform));
        assert_eq!(dec.device, None);
        let got = config_opts(dec.reply.as_ref().unwrap());
        assert_eq!(got, expected(&conf, subnet, None, conf.classes.get(&p.class)), "{fabric}/{}", p.class);
    }
    // A client of no platform gets the subnet's options and no boot option.
    let req = q(MessageType::Discover, stranger(2000)).vendor(b"MSFT 5.0").relay(
        relay_of(&conf.subnets[0]),
        None,
        None,
    );
    let dec = reply(&cfg, &leases, &req.build(), now);
    assert_eq!(config_opts(dec.reply.as_ref().unwrap()), expected(&conf, &conf.subnets[0], None, None));
}

#[test]
fn campus_replies_match_golden_dhcpd_conf() {
    check_fabric("campus");
}

#[test]
fn dc1_replies_match_golden_dhcpd_conf() {
    check_fabric("dc1");
}

#[test]
fn lab_replies_match_golden_dhcpd_conf() {
    check_fabric("lab");
}

#[test]
fn golden_boot_values_are_the_manifest_ones() {
    // The other direction: what the server reads (runtime.json) names the same scripts
    // as dhcpd.conf, so a stale manifest would show up here too.
    for fabric in ["campus", "dc1", "lab"] {
        let conf =
            parse(&std::fs::read_to_string(repo().join("golden").join(fabric).join("dhcpd.conf")).unwrap());
        for p in manifest(fabric).platforms {
            let class = &conf.classes[&p.class];
            let v = class.opts.iter().find(|(k, _)| k.contains("file-name") || k.contains("url")).unwrap().1;
            assert_eq!(text(v), p.boot_value.as_bytes(), "{fabric}/{}", p.class);
        }
    }
}
