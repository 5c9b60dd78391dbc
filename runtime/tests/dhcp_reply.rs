//! Table tests of the pure reply function (no sockets): platform recognition from
//! realistic option values, every identity kind, relay and local clients, pool
//! allocation, the RFC 2131 message flow (OFFER, ACK, NAK, RELEASE, DECLINE, INFORM),
//! option selection and reply addressing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dhcp_support.rs"]
mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use dhcproto::v4::{MessageType, OptionCode};
use support::{Q, config, ip, ips, looks_like, manifest, q, stranger, wire_opts};
use ztp_runtime::dhcp::addressing::destination;
use ztp_runtime::dhcp::classify;
use ztp_runtime::dhcp::config::Config;
use ztp_runtime::dhcp::leases::{Change, LeaseTable};
use ztp_runtime::dhcp::reply::{Decision, reply};
use ztpc::platform::Platform;
use ztpc::render::manifest::{DeviceInfo, IdentityKind};

const NOW: u64 = 1_700_000_000;
/// campus: the server 172.16.0.10 sits on 172.16.0.0/24; 172.16.10.0/24 and
/// 172.16.20.0/25 are behind relays at .1.
const SERVER: &str = "172.16.0.10";
const BLDG_A: &str = "172.16.10.1";
const BLDG_B: &str = "172.16.20.1";

fn run(cfg: &Config, t: &mut LeaseTable, req: &Q) -> Decision {
    let d = reply(cfg, t, &req.build(), NOW);
    t.apply(d.change, &mut Vec::new());
    d
}

fn kind(d: &Decision) -> Option<MessageType> {
    d.kind()
}

fn yiaddr(d: &Decision) -> Ipv4Addr {
    d.reply.as_ref().unwrap().yiaddr()
}

/// DISCOVER then REQUEST (SELECTING) of the offered address; returns the ACK.
fn dora(cfg: &Config, t: &mut LeaseTable, base: Q) -> Decision {
    let offer = run(cfg, t, &base);
    assert_eq!(kind(&offer), Some(MessageType::Offer), "{}", offer.why);
    let req = base.kind(MessageType::Request).requested(yiaddr(&offer)).server(cfg.server_id);
    let ack = run(cfg, t, &req);
    assert_eq!(kind(&ack), Some(MessageType::Ack), "{}", ack.why);
    assert_eq!(yiaddr(&ack), yiaddr(&offer));
    ack
}

#[test]
fn platforms_are_recognised_from_what_each_nos_sends() {
    let d = MessageType::Discover;
    let m = [0x02, 0, 0, 0, 0, 1];
    let cases: Vec<(Q, Option<Platform>)> = vec![
        (q(d, m).vendor(b"Juniper-mx10003"), Some(Platform::Junos)),
        (q(d, m).vendor(b"Juniper-qfx10002-36q-DN817"), Some(Platform::Junos)),
        (q(d, m).vendor(b"Juniper-ex9214-VM"), Some(Platform::Junos)),
        (q(d, m).vendor(b"Juniper:vmx:VM5F52E443C7"), Some(Platform::Junos)),
        (q(d, m).vendor(b"Juniper-mx10003").user_class(b"Cisco-POAP"), Some(Platform::Junos)),
        (q(d, m).vendor(b"Juniper-ptx10003").user_class(b"23.2R1.15-EVO"), Some(Platform::JunosEvo)),
        // RFC 3004 framing (a length byte) still ends with "-EVO", as dhcpd's suffix sees it.
        (q(d, m).vendor(b"Juniper-acx7100").user_class(b"\x0d23.2R1.15-EVO"), Some(Platform::JunosEvo)),
        (q(d, m).vendor(b"Arista;DCS-7050S-64;01.23;JPE12345678"), Some(Platform::Eos)),
        (q(d, m).vendor(b"Arista;DCS-7280DR3-24;12.05;JPE21115446"), Some(Platform::Eos)),
        (
            q(d, m).vendor(b"Cisco N9K-C93180YC-FX3").client_id(b"\0SAL12345678").user_class(b"Cisco-POAP"),
            Some(Platform::Nxos),
        ),
        (
            q(d, m).client_id(b"SONiC##E1031##E1031B2F035A17GD020").user_class(b"SONiC-ZTP").host("sonic"),
            Some(Platform::Sonic),
        ),
        (q(d, m).host("sonic"), Some(Platform::Sonic)),
        (q(d, m).client_id(b"SONiC##AS7326-56X##X"), Some(Platform::Sonic)),
        (q(d, m).vendor(b"cumulus-linux  x86_64").host("cumulus"), Some(Platform::Cumulus)),
        // Not ours: ONIE before a NOS, PnP, Windows, nothing at all, EVO user class alone.
        (
            q(d, m).vendor(b"onie_vendor:x86_64-accton_as7326_56x-r0").user_class(b"onie_dhcp_user_class"),
            None,
        ),
        (q(d, m).vendor(b"cisco pnp"), None),
        (q(d, m).vendor(b"MSFT 5.0").host("laptop"), None),
        (q(d, m), None),
        (q(d, m).user_class(b"23.2R1.15-EVO"), None),
        (q(d, m).host("cumulus"), None),
    ];
    for (i, (req, want)) in cases.iter().enumerate() {
        assert_eq!(classify::platform(&req.build().msg), *want, "case {i}");
    }
}

/// Campus plus serial-identified devices for the platforms whose serial rides in
/// option 60 (campus has serial devices for NX-OS and SONiC only).
fn with_serials(devices: &[(&str, Platform, &str, &str)]) -> Config {
    let mut m = manifest("campus");
    for (name, p, serial, a) in devices {
        std::sync::Arc::make_mut(&mut m.devices).push(DeviceInfo {
            name: name.to_string(),
            platform: *p,
            mac: None,
            serial: Some(serial.to_string()),
            model: None,
            address: Some(ip(a)),
            location: None,
            dhcp_identity: IdentityKind::Serial,
            boot_value: format!("devices/{name}.sh"),
            script: format!("devices/{name}.sh"),
        });
    }
    Config::new(&m, "test")
}

#[test]
fn every_identity_kind_finds_its_device_and_address() {
    let cfg = with_serials(&[
        ("jx", Platform::Junos, "JN1234AB", "172.16.10.40"),
        ("ea", Platform::Eos, "JPE99887766", "172.16.10.41"),
        ("ev", Platform::JunosEvo, "WS37", "172.16.10.42"),
    ]);
    let t = LeaseTable::default();
    let d = MessageType::Discover;
    let a = ip(BLDG_A);
    let b = ip(BLDG_B);
    // (request, device, address)
    let cases: Vec<(Q, &str, &str)> = vec![
        // MAC host reservations, local (core1, core2) and relayed (dist-a1).
        (
            looks_like(q(d, [0x52, 0x54, 0, 0x16, 0, 0x11]), Platform::Junos, None).local(ip(SERVER)),
            "core1",
            "172.16.0.11",
        ),
        (
            looks_like(q(d, [0x52, 0x54, 0, 0xab, 0, 0x12]), Platform::JunosEvo, None).local(ip(SERVER)),
            "core2",
            "172.16.0.12",
        ),
        (
            looks_like(q(d, [0x52, 0x54, 0, 0x16, 0x0a, 0x21]), Platform::Eos, None).relay(a, None, None),
            "dist-a1",
            "172.16.10.21",
        ),
        // Location: option 82 remote-id + circuit-id from the building B relay.
        (
            looks_like(q(d, stranger(1)), Platform::Junos, None).relay(
                b,
                Some("bldg-b-rtr1"),
                Some("ge-0/0/12"),
            ),
            "acc-b2",
            "172.16.20.22",
        ),
        // Serials: NX-OS and SONiC in option 61, Junos (both forms) and EOS in option 60.
        (
            looks_like(q(d, stranger(2)), Platform::Nxos, Some("FDO24160A1B")).relay(a, None, None),
            "acc-a1",
            "172.16.10.31",
        ),
        (
            looks_like(q(d, stranger(3)), Platform::Sonic, Some("AS7326B2F035A17")).relay(a, None, None),
            "acc-a2",
            "172.16.10.32",
        ),
        (
            looks_like(q(d, stranger(4)), Platform::Junos, Some("JN1234AB")).relay(a, None, None),
            "jx",
            "172.16.10.40",
        ),
        (q(d, stranger(5)).vendor(b"Juniper:ex4400:JN1234AB").relay(a, None, None), "jx", "172.16.10.40"),
        (
            looks_like(q(d, stranger(6)), Platform::Eos, Some("JPE99887766")).relay(a, None, None),
            "ea",
            "172.16.10.41",
        ),
        (
            looks_like(q(d, stranger(7)), Platform::JunosEvo, Some("WS37")).relay(a, None, None),
            "ev",
            "172.16.10.42",
        ),
    ];
    for (req, name, addr) in &cases {
        let dec = reply(&cfg, &t, &req.build(), NOW);
        let dev = dec.device.map(|i| cfg.devices[i].name.as_str());
        assert_eq!(dev, Some(*name), "{name}: {}", dec.why);
        assert_eq!(yiaddr(&dec), ip(addr), "{name}");
        assert_eq!(dec.change, Change::None, "{name}: reserved addresses are no pool leases");
        let o = wire_opts(dec.reply.as_ref().unwrap());
        assert_eq!(o[&12], name.as_bytes(), "{name}: host name");
    }
    // Near misses are strangers and get pool addresses.
    let misses: Vec<Q> = vec![
        looks_like(q(d, stranger(8)), Platform::Junos, None).relay(b, Some("bldg-b-rtr2"), Some("ge-0/0/12")),
        looks_like(q(d, stranger(9)), Platform::Junos, None).relay(b, None, Some("ge-0/0/12")),
        q(d, stranger(10)).vendor(b"Juniper-ex4400-XJN1234AB").relay(a, None, None),
        q(d, stranger(11)).vendor(b"Arista;DCS-7050;01.00;JPE99887766X").relay(a, None, None),
        looks_like(q(d, stranger(12)), Platform::Nxos, Some("FDO24160A1BX")).relay(a, None, None),
        q(d, stranger(13)).client_id(b"FDO24160A1B").relay(a, None, None),
        q(d, stranger(14)).client_id(b"SONiC##AS7326-56X#AS7326B2F035A17").relay(a, None, None),
    ];
    for (i, req) in misses.iter().enumerate() {
        let dec = reply(&cfg, &t, &req.build(), NOW);
        assert_eq!(dec.device, None, "miss {i}");
        let s = cfg.subnet_of(req.msg.giaddr()).unwrap();
        assert!(s.in_pool(yiaddr(&dec)), "miss {i}: {}", yiaddr(&dec));
        assert!(matches!(dec.change, Change::Offer { .. }));
    }
}

#[test]
fn relayed_and_local_clients_get_their_link_subnet() {
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let local = run(&cfg, &mut t, &q(MessageType::Discover, stranger(1)).local(ip(SERVER)).broadcast());
    assert!(cfg.subnets[0].in_pool(yiaddr(&local)));
    let o = wire_opts(local.reply.as_ref().unwrap());
    assert_eq!(ips(&o[&3]), [ip("172.16.0.1")]);
    assert_eq!(
        destination(&q(MessageType::Discover, stranger(1)).broadcast().msg, MessageType::Offer),
        "255.255.255.255:68".parse().unwrap()
    );

    let relayed = q(MessageType::Discover, stranger(2)).relay(ip(BLDG_B), None, None);
    let d = run(&cfg, &mut t, &relayed);
    assert!(cfg.subnets[2].in_pool(yiaddr(&d)));
    let m = d.reply.as_ref().unwrap();
    assert_eq!(m.giaddr(), ip(BLDG_B));
    assert_eq!(ips(&wire_opts(m)[&1]), [ip("255.255.255.128")]);
    assert_eq!(destination(&relayed.msg, MessageType::Offer), "172.16.20.1:67".parse().unwrap());

    // Unknown links: dropped without a reply.
    let off = run(&cfg, &mut t, &q(MessageType::Discover, stranger(3)).relay(ip("192.0.2.1"), None, None));
    assert!(off.reply.is_none() && off.why.contains("no served subnet"));
    let dc1 = config("dc1");
    let nowhere = run(&dc1, &mut t, &q(MessageType::Discover, stranger(4)).local(ip("192.0.2.7")));
    assert!(nowhere.reply.is_none());
}

#[test]
fn pool_addresses_are_distinct_stable_and_never_reserved() {
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let mut seen = HashSet::new();
    // 172.16.20.64..126 holds 63 addresses; 172.16.20.22 (acc-b2) is reserved.
    for n in 0..63 {
        let ack = dora(&cfg, &mut t, q(MessageType::Discover, stranger(n)).relay(ip(BLDG_B), None, None));
        let a = yiaddr(&ack);
        assert!(cfg.subnets[2].in_pool(a) && cfg.reserved_for(a).is_none());
        assert!(seen.insert(a), "{a} handed out twice");
    }
    let full = run(&cfg, &mut t, &q(MessageType::Discover, stranger(99)).relay(ip(BLDG_B), None, None));
    assert!(full.reply.is_none() && full.why.contains("no free address"));
    // A known client gets its own address back, also with another xid or a new DISCOVER.
    let again = run(&cfg, &mut t, &q(MessageType::Discover, stranger(5)).relay(ip(BLDG_B), None, None));
    assert_eq!(kind(&again), Some(MessageType::Offer));
    assert!(seen.contains(&yiaddr(&again)));
    // A requested address is honoured when free.
    let mut t2 = LeaseTable::default();
    let want = ip("172.16.20.100");
    let o = run(
        &cfg,
        &mut t2,
        &q(MessageType::Discover, stranger(7)).relay(ip(BLDG_B), None, None).requested(want),
    );
    assert_eq!(yiaddr(&o), want);
    // ... and an offer holds the address against others for a while.
    let other = run(
        &cfg,
        &mut t2,
        &q(MessageType::Discover, stranger(8)).relay(ip(BLDG_B), None, None).requested(want),
    );
    assert_ne!(yiaddr(&other), want);
}

#[test]
fn acks_carry_lease_times_and_requests_are_checked() {
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let base = q(MessageType::Discover, stranger(1)).relay(ip(BLDG_A), None, None);
    let ack = dora(&cfg, &mut t, base.clone());
    let a = yiaddr(&ack);
    let o = wire_opts(ack.reply.as_ref().unwrap());
    assert_eq!(o[&51], 3600u32.to_be_bytes());
    assert_eq!(o[&58], 1800u32.to_be_bytes());
    assert_eq!(o[&59], 3150u32.to_be_bytes());
    assert_eq!(ips(&o[&54]), [ip(SERVER)]);
    assert!(matches!(ack.change, Change::Bind { expires, .. } if expires == NOW + 3600));
    assert!(ack.must_persist());

    // A lease asked longer than the maximum gets the maximum (9200).
    let long = dora(&cfg, &mut LeaseTable::default(), base.clone().lease(100_000));
    assert_eq!(wire_opts(long.reply.as_ref().unwrap())[&51], 9200u32.to_be_bytes());

    // RENEWING: unicast with ciaddr, answered to ciaddr.
    let renew = q(MessageType::Request, stranger(1)).ciaddr(a);
    let r = run(&cfg, &mut t, &renew);
    assert_eq!(kind(&r), Some(MessageType::Ack));
    assert_eq!(r.reply.as_ref().unwrap().ciaddr(), a);
    assert_eq!(destination(&renew.msg, MessageType::Ack), format!("{a}:68").parse().unwrap());

    // INIT-REBOOT through the relay with the remembered address.
    let reboot = q(MessageType::Request, stranger(1)).relay(ip(BLDG_A), None, None).requested(a);
    assert_eq!(kind(&run(&cfg, &mut t, &reboot)), Some(MessageType::Ack));

    // The client chose another server: no reply, our offer is withdrawn.
    let mut t3 = LeaseTable::default();
    let o = run(&cfg, &mut t3, &q(MessageType::Discover, stranger(3)).relay(ip(BLDG_A), None, None));
    let chose = q(MessageType::Request, stranger(3))
        .relay(ip(BLDG_A), None, None)
        .requested(yiaddr(&o))
        .server(ip("172.16.0.99"));
    let d = run(&cfg, &mut t3, &chose);
    assert!(d.reply.is_none() && d.why.contains("another server"));
    assert!(matches!(d.change, Change::Withdraw { .. }));
    assert!(ztp_runtime::dhcp::leases::LeaseView::at(&t3, yiaddr(&o)).is_none());
}

#[test]
fn naks_for_wrong_network_taken_and_reserved_addresses() {
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let holder = dora(&cfg, &mut t, q(MessageType::Discover, stranger(1)).relay(ip(BLDG_A), None, None));
    let taken = yiaddr(&holder);
    let nak_of = |d: &Decision| {
        assert_eq!(kind(d), Some(MessageType::Nak), "{}", d.why);
        let m = d.reply.as_ref().unwrap();
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        let o = wire_opts(m);
        assert!(!o.contains_key(&51) && !o.contains_key(&1) && o.contains_key(&56));
        assert_eq!(d.change, Change::None);
        d.why
    };
    let other = |n| q(MessageType::Request, stranger(n)).relay(ip(BLDG_A), None, None);
    // INIT-REBOOT on the wrong network (moved from building B to A).
    let wrong = nak_of(&run(&cfg, &mut t, &other(2).requested(ip("172.16.20.70"))));
    assert!(wrong.contains("network"));
    // An address another client holds.
    assert!(nak_of(&run(&cfg, &mut t, &other(3).requested(taken))).contains("another client"));
    // SELECTING an address that is another's (a stale offer).
    assert!(
        nak_of(&run(&cfg, &mut t, &other(4).requested(taken).server(ip(SERVER)))).contains("another client")
    );
    // A device's reserved address asked by a stranger, and a device asking another one.
    assert!(nak_of(&run(&cfg, &mut t, &other(5).requested(ip("172.16.10.21")))).contains("reserved"));
    let dist = q(MessageType::Request, [0x52, 0x54, 0, 0x16, 0x0a, 0x21]).relay(ip(BLDG_A), None, None);
    assert!(nak_of(&run(&cfg, &mut t, &dist.requested(ip("172.16.10.60")))).contains("reserved"));
    // Outside the pools, e.g. the router.
    assert!(nak_of(&run(&cfg, &mut t, &other(6).requested(ip(BLDG_A)))).contains("pool"));
    // Through a relay the NAK asks for a broadcast (RFC 2131 §4.3.2); locally it is broadcast.
    let d = run(&cfg, &mut t, &other(3).requested(taken));
    assert!(d.reply.as_ref().unwrap().flags().broadcast());
    let local = q(MessageType::Request, stranger(7)).local(ip(SERVER)).requested(ip("172.16.10.60"));
    assert_eq!(kind(&run(&cfg, &mut t, &local)), Some(MessageType::Nak));
    assert_eq!(destination(&local.msg, MessageType::Nak), "255.255.255.255:68".parse().unwrap());
    // The holder itself is fine.
    assert_eq!(kind(&run(&cfg, &mut t, &other(1).requested(taken))), Some(MessageType::Ack));
}

#[test]
fn release_returns_the_address_and_decline_sets_it_aside() {
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let via = |n| q(MessageType::Discover, stranger(n)).relay(ip(BLDG_B), None, None);
    let a = yiaddr(&dora(&cfg, &mut t, via(1)));
    // Someone else cannot release it.
    let bad = run(&cfg, &mut t, &q(MessageType::Release, stranger(2)).ciaddr(a).server(ip(SERVER)));
    assert_eq!(bad.change, Change::None);
    let rel = run(&cfg, &mut t, &q(MessageType::Release, stranger(1)).ciaddr(a).server(ip(SERVER)));
    assert!(rel.reply.is_none());
    assert!(matches!(rel.change, Change::Release { addr, .. } if addr == a));
    // Free for others now: the round-robin cursor moves on, so ask for it.
    let next = run(&cfg, &mut t, &via(2).requested(a));
    assert_eq!(yiaddr(&next), a);

    // DECLINE: the address is in use by some host; nobody gets it for an hour.
    let mut t = LeaseTable::default();
    let b = yiaddr(&dora(&cfg, &mut t, via(3)));
    let dec = run(
        &cfg,
        &mut t,
        &q(MessageType::Decline, stranger(3)).requested(b).server(ip(SERVER)).relay(ip(BLDG_B), None, None),
    );
    assert!(dec.reply.is_none() && dec.notable);
    assert!(matches!(dec.change, Change::Decline { addr, until } if addr == b && until > NOW));
    for n in 4..70 {
        let d = reply(&cfg, &t, &via(n).requested(b).build(), NOW);
        assert_ne!(d.reply.as_ref().map(|m| m.yiaddr()), Some(b));
    }
    let r =
        run(&cfg, &mut t, &q(MessageType::Request, stranger(3)).relay(ip(BLDG_B), None, None).requested(b));
    assert_eq!(kind(&r), Some(MessageType::Nak), "the decliner cannot take it back either");
    let later = reply(&cfg, &t, &via(5).requested(b).build(), NOW + 3601);
    assert_eq!(yiaddr(&later), b, "usable again after the hold");
    // A stranger cannot decline what it was not given.
    let ign = run(&cfg, &mut t, &q(MessageType::Decline, stranger(9)).requested(ip("172.16.20.90")));
    assert_eq!(ign.change, Change::None);
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let cfg = config("campus");
    let t = LeaseTable::default();
    let me = ip("172.16.10.77");
    let req = looks_like(q(MessageType::Inform, stranger(1)), Platform::Eos, None).ciaddr(me);
    let d = reply(&cfg, &t, &req.build(), NOW);
    assert_eq!(kind(&d), Some(MessageType::Ack));
    let m = d.reply.as_ref().unwrap();
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.ciaddr(), me);
    let o = wire_opts(m);
    for c in [51, 58, 59] {
        assert!(!o.contains_key(&c), "no lease time in an INFORM ACK ({c})");
    }
    assert_eq!(o[&67], b"ztp-eos.sh");
    assert_eq!(ips(&o[&3]), [ip(BLDG_A)]);
    assert_eq!(d.change, Change::None);
    assert_eq!(destination(&req.msg, MessageType::Ack), "172.16.10.77:68".parse().unwrap());
}

#[test]
fn a_parameter_request_list_limits_the_options_like_dhcpd() {
    let cfg = config("campus");
    let t = LeaseTable::default();
    let eos = |prl: Option<&[u8]>| {
        let r = looks_like(q(MessageType::Discover, stranger(1)), Platform::Eos, None).relay(
            ip(BLDG_A),
            None,
            None,
        );
        let r = match prl {
            Some(p) => r.prl(p),
            None => r,
        };
        wire_opts(reply(&cfg, &t, &r.build(), NOW).reply.as_ref().unwrap())
    };
    let all = eos(None);
    for c in [1, 3, 6, 15, 42, 66, 67, 119] {
        assert!(all.contains_key(&c), "without a list everything configured goes ({c})");
    }
    let some = eos(Some(&[3, 6, 67]));
    assert!(some.contains_key(&1), "subnet mask always, for DISCOVER and REQUEST");
    assert!(some.contains_key(&3) && some.contains_key(&6) && some.contains_key(&67));
    for c in [15, 42, 66, 119] {
        assert!(!some.contains_key(&c), "{c} not asked for");
    }
    for c in [53, 54, 51, 58, 59] {
        assert!(some.contains_key(&c), "protocol option {c} always");
    }
    // Junos asks for 43 (BERNAT's option 55); the sub-option is exact.
    let j = looks_like(q(MessageType::Discover, stranger(2)), Platform::Junos, None)
        .relay(ip(BLDG_A), None, None)
        .prl(&[3, 51, 1, 15, 6, 66, 67, 120, 44, 43, 150, 12, 7, 42]);
    let o = wire_opts(reply(&cfg, &t, &j.build(), NOW).reply.as_ref().unwrap());
    assert_eq!(o[&43], [&[1u8, 12][..], b"ztp-junos.sh"].concat());
    assert_eq!(o[&66], b"172.16.0.10");
}

#[test]
fn relay_information_and_client_id_are_echoed() {
    let cfg = config("campus");
    let t = LeaseTable::default();
    let req = looks_like(q(MessageType::Discover, stranger(1)), Platform::Sonic, None).relay(
        ip(BLDG_B),
        Some("bldg-b-rtr1"),
        Some("ge-0/0/40"),
    );
    let m = reply(&cfg, &t, &req.build(), NOW).reply.unwrap();
    let o = wire_opts(&m);
    assert_eq!(o[&82], [&[1u8, 9][..], b"ge-0/0/40", &[2, 11], b"bldg-b-rtr1"].concat());
    assert_eq!(o[&61], b"SONiC##AS7326-56X##E1031B2F035A17GD020");
    assert_eq!(o[&239], b"http://172.16.0.10:8080/ztp-sonic.sh");
    assert_eq!(m.xid(), req.msg.xid());
    assert_eq!(m.chaddr(), &stranger(1));
}

#[test]
fn nothing_is_answered_without_a_message_type_or_to_server_messages() {
    let cfg = config("campus");
    let t = LeaseTable::default();
    let mut bootp = q(MessageType::Discover, stranger(1)).local(ip(SERVER));
    bootp.msg.opts_mut().remove(OptionCode::MessageType);
    assert!(reply(&cfg, &t, &bootp.build(), NOW).reply.is_none());
    let offer = q(MessageType::Offer, stranger(1)).local(ip(SERVER));
    assert!(reply(&cfg, &t, &offer.build(), NOW).reply.is_none());
}

#[test]
fn mangled_packets_are_dropped_or_answered_never_a_panic() {
    use dhcproto::{Encodable, Encoder};
    use ztp_runtime::dhcp::reply::Request;
    use ztp_runtime::dhcp::wire;
    let cfg = config("campus");
    let mut t = LeaseTable::default();
    let seed = looks_like(q(MessageType::Discover, stranger(1)), Platform::Sonic, None)
        .relay(ip(BLDG_A), Some("r1"), Some("c1"))
        .prl(&[1, 3, 6, 67, 239])
        .requested(ip("172.16.10.60"));
    let mut good = Vec::new();
    seed.msg.encode(&mut Encoder::new(&mut good)).unwrap();
    // xorshift64: a fixed sequence, so a failure reproduces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut decoded, mut answered) = (0, 0);
    for _ in 0..20_000 {
        let mut p = good.clone();
        for _ in 0..(next() % 6 + 1) {
            let i = (next() as usize) % p.len();
            // Mostly the option area, where the structure is.
            let i = if next() % 4 == 0 { i } else { 240 + i % (p.len() - 240) };
            p[i] = next() as u8;
        }
        if next() % 5 == 0 {
            p.truncate((next() as usize) % p.len());
        }
        if let Ok(msg) = wire::decode(&p) {
            decoded += 1;
            let d = reply(&cfg, &t, &Request { msg, local: ip(SERVER) }, NOW);
            t.apply(d.change, &mut Vec::new());
            if let Some(m) = &d.reply {
                let mut out = Vec::new();
                wire::encode(m, &mut out).unwrap();
                answered += 1;
            }
        }
    }
    assert!(decoded > 1000 && answered > 100, "decoded {decoded}, answered {answered}");
}
