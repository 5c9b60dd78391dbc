//! End to end, on loopback inside a network namespace this test makes (lo with
//! 127.0.0.1 and 127.0.0.2): the DHCP server listens on 127.0.0.1:67 and clients act
//! as a relay agent on 127.0.0.2:67 (toolchain-notes.md §3).
//!
//! Changing namespace in-process needs setns(2) (unsafe, and per thread under tokio), so
//! this test binary runs itself again under `ip netns exec` as two helpers: the server
//! (`helper_serve`) and a client (`helper_client`); outside that, both return at once.
//! The test checks, over real sockets: a relayed exchange per platform and identity kind,
//! option by option; that leases acknowledged before a kill -9 are kept after the
//! restart; and perfdhcp in relay mode with 1,000 clients and no drops.
//!
//! Needs root, `ip` and `perfdhcp` (Debian package kea-admin). Without them it prints
//! SKIPPED, or fails when ZTP_REQUIRE_ORACLES=1. Every wait is bounded, and the
//! namespace and helpers are removed even when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dhcp_support.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dhcproto::v4::{self, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use support::{Q, ip, looks_like, q, raw_opts, stranger, wire_opts};
use ztp_runtime::dhcp::config::Config;
use ztp_runtime::dhcp::leases::LeaseTable;
use ztp_runtime::generation::Generation;
use ztpc::platform::Platform;
use ztpc::render::manifest::Manifest;

const SERVE_ENV: &str = "ZTP_DHCP_E2E_SERVE";
const CLIENT_ENV: &str = "ZTP_DHCP_E2E_CLIENT";
const READY: &str = "DHCP-E2E-READY";

const FABRIC: &str = r#"
fabric "loop" {
    ztp-server "127.0.0.1"
    dhcp {
        domain-name "loop.example.net"
        domain-search "loop.example.net" "example.net"
        dns "127.0.0.53"
        ntp "127.0.0.123"
        lease-time 3600
        subnet "127.0.0.0/16" {
            router "127.0.0.2"
            pool "127.0.1.0" "127.0.15.255"
        }
    }
    platform "junos"
    platform "junos-evo"
    platform "eos"
    platform "nxos"
    platform "sonic"
    platform "cumulus"
    device "mac-eos" platform="eos" {
        mac "52:54:00:7f:00:11"
        address "127.0.0.11"
    }
    device "mac-evo" platform="junos-evo" {
        mac "52:54:00:7f:00:12"
        address "127.0.0.12"
    }
    device "loc-junos" platform="junos" {
        location remote-id="relay1" circuit-id="ge-0/0/1"
        address "127.0.0.13"
    }
    device "ser-junos" platform="junos" {
        serial "JN0001"
        address "127.0.0.14"
    }
    device "ser-eos" platform="eos" {
        serial "JPE0001"
        address "127.0.0.15"
    }
    device "ser-nxos" platform="nxos" {
        serial "FDO0001"
        address "127.0.0.16"
    }
    device "ser-sonic" platform="sonic" {
        serial "SN0001"
        address "127.0.0.17"
    }
    device "mac-cumulus" platform="cumulus" {
        mac "52:54:00:7f:00:18"
    }
}
"#;

// ---------------------------------------------------------------- the test itself

#[test]
fn dhcp_end_to_end_in_a_namespace() {
    if let Some(why) = missing_oracle() {
        if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("ZTP_REQUIRE_ORACLES=1 but {why}");
        }
        println!("SKIPPED: dhcp end-to-end: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fabric = tmp.path().join("fabric.kdl");
    std::fs::write(&fabric, FABRIC).unwrap();
    let state = tmp.path().join("state");
    let results = tmp.path().join("acked.txt");
    let ns = Netns::create(&format!("ztp-dhcp-{}", std::process::id()));

    let mut server = Helper::serve(&ns, &fabric, &state);
    client(&ns, "exchanges", &fabric, &results);
    client(&ns, "fill", &fabric, &results);
    server.kill9();
    let journal = std::fs::read_to_string(state.join("dhcp-leases.log")).unwrap();
    assert!(journal.lines().count() >= 100, "the journal holds the acknowledged leases");

    let _server = Helper::serve(&ns, &fabric, &state);
    client(&ns, "after-restart", &fabric, &results);

    // perfdhcp as a relay agent: 1,000 different clients, 2,000 DORA exchanges at
    // 400/s; it exits 0 only when nothing was dropped. -W: wait 2 s after the last
    // request for its answer (the default, 0, counts the exchange still in flight when
    // the count is reached as a drop).
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "timeout", "60", "perfdhcp", "-4", "-l", "127.0.0.2"])
        .args(["-r", "400", "-R", "1000", "-n", "2000", "-p", "30", "-W", "2000000", "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "perfdhcp: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let drops: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("drops:")).collect();
    assert!(!drops.is_empty() && drops.iter().all(|l| l.trim() == "drops: 0"), "{drops:?}");
}

fn missing_oracle() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("needs root to make a network namespace".into());
    }
    for tool in ["ip", "perfdhcp", "timeout"] {
        if find(tool).is_none() {
            return Some(format!("`{tool}` not found (perfdhcp is in the Debian package kea-admin)"));
        }
    }
    None
}

fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/sbin"]).map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

/// A namespace of our own, deleted on drop (which also happens when a test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        let ns = Netns { name: name.to_string() };
        for args in [
            vec!["netns", "add", name],
            vec!["-n", name, "link", "set", "lo", "up"],
            vec!["-n", name, "addr", "add", "127.0.0.2/8", "dev", "lo"],
        ] {
            let st = Command::new("ip").args(&args).status().unwrap();
            assert!(st.success(), "ip {args:?} failed");
        }
        ns
    }

    /// `ip netns exec NAME <this test binary> --exact TEST`, with `env`.
    fn helper(&self, test: &str, env: (&str, String)) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env.0, env.1);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The server helper process, killed on drop.
struct Helper {
    child: Child,
}

impl Helper {
    fn serve(ns: &Netns, fabric: &Path, state: &Path) -> Helper {
        let env = format!("{}\n{}", fabric.display(), state.display());
        let mut child = ns.helper("helper_serve", (SERVE_ENV, env)).stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut h = Helper { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(READY) => return h,
                Ok(_) => {}
                Err(_) => {
                    h.kill9();
                    panic!("the DHCP server helper did not get ready");
                }
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client(ns: &Netns, phase: &str, fabric: &Path, results: &Path) {
    let env = format!("{phase}\n{}\n{}", fabric.display(), results.display());
    let mut child = ns.helper("helper_client", (CLIENT_ENV, env)).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "client phase {phase} failed");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client phase {phase} timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- helper: the server

#[test]
fn helper_serve() {
    let Ok(env) = std::env::var(SERVE_ENV) else { return };
    let (fabric, state) = env.split_once('\n').unwrap();
    let filter = std::env::var("ZTP_DHCP_E2E_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let state_dir = PathBuf::from(state);
        let st = ztp_runtime::state::State::new(
            Generation::compile(Path::new(fabric), &Default::default()).unwrap(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let listen = "127.0.0.1:67".parse().unwrap();
        let task =
            tokio::spawn(async move { ztp_runtime::dhcp::server::serve(st, listen, &state_dir, tx).await });
        let addr = rx.await.expect("the server got ready");
        println!("{READY} {addr}");
        // Serve until killed; never outlive a forgotten parent by long.
        tokio::select! {
            r = task => panic!("the server stopped: {r:?}"),
            _ = tokio::time::sleep(Duration::from_secs(180)) => {}
        }
    });
}

// ---------------------------------------------------------------- helper: a client

#[test]
fn helper_client() {
    let Ok(env) = std::env::var(CLIENT_ENV) else { return };
    let mut it = env.split('\n');
    let (phase, fabric, results) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let g = Generation::compile(Path::new(fabric), &Default::default()).unwrap();
    let cfg = Config::new(&g.manifest, &g.id);
    let relay = Relay::bind();
    match phase {
        "exchanges" => exchanges(&cfg, &g.manifest, &relay),
        "fill" => {
            let mut lines = String::new();
            let mut seen = HashSet::new();
            for n in 0..100 {
                let a = relay.dora(&cfg, q(MessageType::Discover, stranger(10_000 + n)));
                assert!(seen.insert(a), "{a} given twice");
                lines.push_str(&format!("{n} {a}\n"));
            }
            std::fs::write(results, lines).unwrap();
        }
        "after-restart" => {
            let text = std::fs::read_to_string(results).unwrap();
            let mut old = HashSet::new();
            for l in text.lines() {
                let (n, a) = l.split_once(' ').unwrap();
                let (n, a): (u32, Ipv4Addr) = (n.parse().unwrap(), a.parse().unwrap());
                old.insert(a);
                let reboot =
                    q(MessageType::Request, stranger(10_000 + n)).relay(relay_ip(), None, None).requested(a);
                let ack = relay.exchange(&reboot).expect("INIT-REBOOT answered");
                assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack), "client {n} keeps {a}");
                assert_eq!(ack.yiaddr(), a);
            }
            assert_eq!(old.len(), 100);
            for n in 0..100 {
                let a = relay.dora(&cfg, q(MessageType::Discover, stranger(20_000 + n)));
                assert!(old.insert(a), "{a} was acknowledged to another client before the restart");
            }
        }
        other => panic!("unknown phase {other}"),
    }
}

fn relay_ip() -> Ipv4Addr {
    ip("127.0.0.2")
}

/// A relay agent on 127.0.0.2:67 talking to the server on 127.0.0.1:67.
struct Relay {
    sock: UdpSocket,
}

impl Relay {
    fn bind() -> Relay {
        let sock = UdpSocket::bind("127.0.0.2:67").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        Relay { sock }
    }

    /// Send and wait for the reply with the same xid; up to 4 tries.
    fn exchange(&self, req: &Q) -> Option<v4::Message> {
        self.exchange_raw(req).map(|(m, _)| m)
    }

    /// The reply decoded, and its options as they were on the wire.
    fn exchange_raw(&self, req: &Q) -> Option<(v4::Message, BTreeMap<u8, Vec<u8>>)> {
        let mut bytes = Vec::new();
        req.msg.encode(&mut Encoder::new(&mut bytes)).unwrap();
        let mut buf = [0u8; 1500];
        for _ in 0..4 {
            self.sock.send_to(&bytes, "127.0.0.1:67").unwrap();
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = v4::Message::decode(&mut Decoder::new(&buf[..n])).unwrap();
                if m.xid() == req.msg.xid() {
                    return Some((m, raw_opts(&buf[..n])));
                }
            }
        }
        None
    }

    fn dora(&self, cfg: &Config, base: Q) -> Ipv4Addr {
        let base = base.relay(relay_ip(), None, None);
        let offer = self.exchange(&base).expect("an OFFER");
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        let req = base.kind(MessageType::Request).requested(offer.yiaddr()).server(cfg.server_id);
        let ack = self.exchange(&req).expect("an ACK");
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(ack.yiaddr(), offer.yiaddr());
        ack.yiaddr()
    }
}

/// A relayed DORA per platform and identity kind. Each reply is compared option by
/// option with the pure reply function's answer to the same request, and its address
/// and boot option with the fabric's own values.
fn exchanges(cfg: &Config, m: &Manifest, relay: &Relay) {
    let d = MessageType::Discover;
    let r = relay_ip();
    let dev = |name: &str| cfg.devices.iter().position(|x| x.name == name).unwrap();
    let mac = |name: &str| cfg.devices[dev(name)].mac.unwrap().0;
    let mut cases: Vec<(Q, Option<usize>, Platform)> = vec![
        (
            looks_like(q(d, mac("mac-eos")), Platform::Eos, None).relay(r, None, None),
            Some(dev("mac-eos")),
            Platform::Eos,
        ),
        (
            looks_like(q(d, mac("mac-evo")), Platform::JunosEvo, None).relay(r, None, None),
            Some(dev("mac-evo")),
            Platform::JunosEvo,
        ),
        (
            looks_like(q(d, mac("mac-cumulus")), Platform::Cumulus, None).relay(r, None, None),
            Some(dev("mac-cumulus")),
            Platform::Cumulus,
        ),
        (
            looks_like(q(d, stranger(1)), Platform::Junos, None).relay(r, Some("relay1"), Some("ge-0/0/1")),
            Some(dev("loc-junos")),
            Platform::Junos,
        ),
        (
            looks_like(q(d, stranger(2)), Platform::Junos, Some("JN0001")).relay(r, None, None),
            Some(dev("ser-junos")),
            Platform::Junos,
        ),
        (
            looks_like(q(d, stranger(3)), Platform::Eos, Some("JPE0001")).relay(r, None, None),
            Some(dev("ser-eos")),
            Platform::Eos,
        ),
        (
            looks_like(q(d, stranger(4)), Platform::Nxos, Some("FDO0001")).relay(r, None, None),
            Some(dev("ser-nxos")),
            Platform::Nxos,
        ),
        (
            looks_like(q(d, stranger(5)), Platform::Sonic, Some("SN0001")).relay(r, None, None),
            Some(dev("ser-sonic")),
            Platform::Sonic,
        ),
    ];
    for (i, p) in Platform::ALL.into_iter().enumerate() {
        cases.push((looks_like(q(d, stranger(100 + i as u32)), p, None).relay(r, None, None), None, p));
    }
    let empty = LeaseTable::default();
    for (req, device, platform) in cases {
        let want = ztp_runtime::dhcp::reply::reply(cfg, &empty, &req.build(), 0);
        let (offer, opts) = relay.exchange_raw(&req).expect("an OFFER");
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!(opts, wire_opts(want.reply.as_ref().unwrap()), "{platform} {device:?}: options");
        let (value, addr) = match device {
            Some(i) => (m.devices[i].boot_value.as_str(), m.devices[i].address),
            None => (m.platforms.iter().find(|x| x.platform == platform).unwrap().boot_value.as_str(), None),
        };
        let (code, data) = boot_option(platform, value);
        assert_eq!(opts.get(&code), Some(&data), "{platform} {device:?}: boot option");
        match device {
            Some(i) => assert_eq!(opts.get(&12).map(Vec::as_slice), Some(m.devices[i].name.as_bytes())),
            None => assert!(!opts.contains_key(&12)),
        }
        match addr {
            Some(a) => assert_eq!(offer.yiaddr(), a, "{platform}: reserved address"),
            None => assert!(cfg.subnets[0].in_pool(offer.yiaddr())),
        }
        let ack = relay
            .exchange(&req.clone().kind(MessageType::Request).requested(offer.yiaddr()).server(cfg.server_id))
            .expect("an ACK");
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack), "{platform}");
        assert_eq!(ack.yiaddr(), offer.yiaddr());
    }
}

/// The boot option each NOS reads (nos-dhcp.md): Junos option 43 sub-option 1, EOS and
/// NX-OS option 67, SONiC and Cumulus option 239.
fn boot_option(p: Platform, value: &str) -> (u8, Vec<u8>) {
    match p {
        Platform::Junos | Platform::JunosEvo => {
            (43, [&[1u8, value.len() as u8][..], value.as_bytes()].concat())
        }
        Platform::Eos | Platform::Nxos => (67, value.as_bytes().to_vec()),
        Platform::Sonic | Platform::Cumulus => (239, value.as_bytes().to_vec()),
    }
}
