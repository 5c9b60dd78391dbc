//! Pool leases survive a restart of the store: what was acknowledged is reloaded, a
//! torn last line is skipped, releases and declines persist, the journal is compacted,
//! and no address is ever handed to two clients across restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dhcp_support.rs"]
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use dhcproto::v4::MessageType;
use support::{ip, manifest, q, stranger};
use ztp_runtime::dhcp::config::Config;
use ztp_runtime::dhcp::journal::{self, FILE_NAME, Journal};
use ztp_runtime::dhcp::leases::{LeaseState, LeaseTable, LeaseView};
use ztp_runtime::dhcp::reply::reply;
use ztpc::model::Pool;
use ztpc::values::parse_cidr;

const NOW: u64 = 1_700_000_000;
const RELAY: &str = "10.64.0.1";

/// campus with a big relayed subnet, so a thousand clients fit.
fn big() -> Config {
    let mut m = manifest("campus");
    let s = &mut m.dhcp.subnets[1];
    s.cidr = parse_cidr("10.64.0.0/16").unwrap();
    s.router = Some(ip(RELAY));
    s.pools = vec![Pool { first: ip("10.64.1.0"), last: ip("10.64.8.255") }];
    Config::new(&m, "test")
}

/// One exchange as the server runs it: decide, apply, persist before "sending".
fn step(
    cfg: &Config,
    t: &mut LeaseTable,
    j: &mut Journal,
    req: &support::Q,
    now: u64,
) -> Option<dhcproto::v4::Message> {
    let d = reply(cfg, t, &req.build(), now);
    let mut recs = Vec::new();
    t.apply(d.change, &mut recs);
    j.append(&recs).unwrap();
    d.reply
}

fn dora(cfg: &Config, t: &mut LeaseTable, j: &mut Journal, n: u32, now: u64) -> Option<Ipv4Addr> {
    let base = q(MessageType::Discover, stranger(n)).relay(ip(RELAY), None, None);
    let offer = step(cfg, t, j, &base, now)?;
    let req = base.kind(MessageType::Request).requested(offer.yiaddr()).server(cfg.server_id);
    let ack = step(cfg, t, j, &req, now)?;
    (ack.opts().msg_type() == Some(MessageType::Ack)).then_some(ack.yiaddr())
}

fn bound(t: &LeaseTable, now: u64) -> HashMap<Ipv4Addr, String> {
    t.iter()
        .filter(|l| l.state == LeaseState::Bound && l.expires > now)
        .map(|l| (l.addr, format!("{:?}", l.client)))
        .collect()
}

fn reopen(dir: &Path, now: u64) -> (LeaseTable, Journal) {
    let (t, j, _) = journal::open(dir, now).unwrap();
    (t, j)
}

#[test]
fn acknowledged_leases_survive_a_restart_and_are_never_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = big();
    let (mut t, mut j) = reopen(dir.path(), NOW);
    let mut acked = HashMap::new();
    for n in 0..1000 {
        let a = dora(&cfg, &mut t, &mut j, n, NOW).expect("a lease");
        assert!(acked.insert(a, n).is_none(), "{a} given twice");
    }
    let before = bound(&t, NOW);
    assert_eq!(before.len(), 1000);
    drop((t, j));

    // "kill -9": nothing but the journal survives.
    let (mut t, mut j) = reopen(dir.path(), NOW + 10);
    assert_eq!(bound(&t, NOW + 10), before);
    // Old clients keep their addresses (INIT-REBOOT), new ones get others.
    for n in (0..1000).step_by(97) {
        let a = *acked.iter().find(|(_, c)| **c == n).unwrap().0;
        let req = q(MessageType::Request, stranger(n)).relay(ip(RELAY), None, None).requested(a);
        let r = step(&cfg, &mut t, &mut j, &req, NOW + 10).unwrap();
        assert_eq!(r.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(r.yiaddr(), a);
    }
    for n in 1000..1500 {
        let a = dora(&cfg, &mut t, &mut j, n, NOW + 10).expect("a lease");
        assert!(acked.insert(a, n).is_none(), "{a} given twice after the restart");
    }
    // And a stranger asking for an old client's address is refused.
    let (a0, _) = acked.iter().find(|(_, c)| **c == 3).unwrap();
    let grab = q(MessageType::Request, stranger(5000)).relay(ip(RELAY), None, None).requested(*a0);
    let nak = step(&cfg, &mut t, &mut j, &grab, NOW + 10).unwrap();
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
}

#[test]
fn a_torn_last_line_is_skipped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = big();
    let (mut t, mut j) = reopen(dir.path(), NOW);
    let a = dora(&cfg, &mut t, &mut j, 1, NOW).unwrap();
    let b = dora(&cfg, &mut t, &mut j, 2, NOW).unwrap();
    drop((t, j));
    let path = dir.path().join(FILE_NAME);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"B 10.64.1.77 0102ee00000003 17000036").unwrap();
    drop(f);
    let (t, _j, seen) = journal::open(dir.path(), NOW).unwrap();
    assert_eq!(seen.skipped, 1);
    let have = bound(&t, NOW);
    assert!(have.contains_key(&a) && have.contains_key(&b) && have.len() == 2);
    // Reopening compacted the file: the torn line is gone.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("10.64.1.77"));
}

#[test]
fn releases_and_declines_persist() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = big();
    let (mut t, mut j) = reopen(dir.path(), NOW);
    let a = dora(&cfg, &mut t, &mut j, 1, NOW).unwrap();
    let b = dora(&cfg, &mut t, &mut j, 2, NOW).unwrap();
    let rel = q(MessageType::Release, stranger(1)).ciaddr(a).server(cfg.server_id);
    assert!(step(&cfg, &mut t, &mut j, &rel, NOW + 5).is_none());
    let dec =
        q(MessageType::Decline, stranger(2)).requested(b).server(cfg.server_id).relay(ip(RELAY), None, None);
    assert!(step(&cfg, &mut t, &mut j, &dec, NOW + 5).is_none());
    drop((t, j));
    let (t, _j) = reopen(dir.path(), NOW + 6);
    assert!(t.at(a).unwrap().usable_by(&ztp_runtime::dhcp::leases::ClientKey::NONE, NOW + 6), "released");
    let d = t.at(b).unwrap();
    assert_eq!(d.state, LeaseState::Declined);
    assert!(d.expires > NOW + 6);
    // The released client still gets its old address back first (RFC 2131 §4.3.1).
    let again =
        reply(&cfg, &t, &q(MessageType::Discover, stranger(1)).relay(ip(RELAY), None, None).build(), NOW + 7);
    assert_eq!(again.reply.unwrap().yiaddr(), a);
}

#[test]
fn compaction_keeps_one_line_per_lease() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = big();
    let (mut t, mut j) = reopen(dir.path(), NOW);
    for n in 0..20 {
        dora(&cfg, &mut t, &mut j, n, NOW).unwrap();
    }
    // Renewals append a line each.
    for round in 1..=20u64 {
        for n in 0..20 {
            let a = t.iter().find(|l| format!("{:?}", l.client).ends_with(&format!("{n:08x}"))).unwrap().addr;
            let renew = q(MessageType::Request, stranger(n)).ciaddr(a);
            step(&cfg, &mut t, &mut j, &renew, NOW + round).unwrap();
        }
    }
    let path = dir.path().join(FILE_NAME);
    let lines =
        |p: &Path| std::fs::read_to_string(p).unwrap().lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(lines(&path), 20 + 400);
    let snap = t.snapshot(NOW + 21);
    j.compact(&snap).unwrap();
    assert_eq!(lines(&path), 20);
    drop((t, j));
    let (t, _j) = reopen(dir.path(), NOW + 21);
    assert_eq!(bound(&t, NOW + 21).len(), 20);
    assert!(t.iter().all(|l| l.expires == NOW + 20 + 3600), "the latest renewal wins");
    assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
}
