//! Three-way agreement: for every device of every example, and an unknown device of each
//! platform, the real ISC dhcpd (with the generated `dhcpd.conf`), the real Kea (with
//! `kea-dhcp4.json`) and ztp-runtime (with the same build directory) answer the same
//! client with the same address and the same boot options.
//!
//! Per example: a server namespace and a relay namespace joined by a veth pair
//! (support/netns.rs). This test binary runs itself again inside the relay namespace
//! (`three_way_inside`), which starts the three servers one after another in the server
//! namespace and plays every client through a relay agent bound to a giaddr in the
//! client's subnet (support/relay_client.rs), with the identifiers its NOS sends
//! (support/nos.rs): a full DISCOVER → OFFER → REQUEST → ACK each. The clients of the
//! server's own subnet are played a second time on the server's link, broadcasting
//! without a relay, as a switch on the ZTP server's segment does.
//!
//! What must be equal, in the OFFER and in the ACK (support/agreement.rs): the message
//! type, yiaddr, siaddr, `file`, `sname`, and every option the client's platform reads:
//! those in its parameter request list (boot options 43, 66, 67, 150, 239, host name
//! 12, routers 3, DNS 6, domain 15, search 119 by the names it carries, NTP 42 ...)
//! plus the subnet mask 1, lease time 51 and server identifier 54. A device with a
//! reserved address must get exactly that address from all three; an unknown device may
//! get a different free address from each (each server picks its own), so then each
//! must be inside the same subnet's pools. The agreed answers are also checked against
//! the fabric: the reserved address, the device's host name, and the boot value of the
//! device (or of its platform) in the option that platform reads. Differences in options
//! no platform here reads (T1/T2 58/59 sent only by ztp-runtime, option 61 echoed by Kea
//! and ztp-runtime) are printed as notes, not failures.
//!
//! Needs root, `ip`, `ss`, dhcpd and kea-dhcp4: without them it prints SKIPPED, or fails
//! when ZTP_REQUIRE_ORACLES=1. Every wait is bounded; namespaces, processes (by PID) and
//! scratch files are removed even when an assertion fails (ZTP_THREE_WAY_KEEP=1 keeps
//! the scratch files: each server's config and log).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::agreement::{self, Answers, giaddr};
use support::netns::Pair;
use support::relay_client::Relay;
use support::servers::{self, Kind};
use ztpc::render::manifest::Manifest;

const INSIDE_ENV: &str = "ZTP_THREE_WAY_INSIDE";

// ---------------------------------------------------------------- the test

#[test]
fn three_way_agreement() {
    if let Some(why) = missing() {
        if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("three-way agreement: {why} and ZTP_REQUIRE_ORACLES=1");
        }
        println!("SKIPPED: three-way agreement: {why}; this check did not run");
        return;
    }
    let started = Instant::now();
    // ZTP_THREE_WAY_KEEP=1 keeps each server's config and log, pass or fail.
    let keep = std::env::var("ZTP_THREE_WAY_KEEP").as_deref() == Ok("1");
    let tmp = tempfile::Builder::new().prefix("ztp-three-way-").disable_cleanup(keep).tempdir().unwrap();
    if keep {
        println!("scratch files kept in {}", tmp.path().display());
    }
    let examples = ztp_tests::examples();
    assert!(examples.len() >= 3, "expected lab, dc1 and campus, found {examples:?}");
    let mut failed = Vec::new();
    for (i, name) in examples.iter().enumerate() {
        let work = tmp.path().join(name);
        let out = work.join("out");
        std::fs::create_dir_all(&work).unwrap();
        build(name, &out);
        let m = manifest(&out);
        let (server, relays, routed) = addressing(&m);
        let pair = Pair::new(&format!("{}{i}", std::process::id() % 100_000), server, &relays, &routed);
        let env = [name.as_str(), &out.display().to_string(), &work.display().to_string(), &pair.server_ns]
            .join("\n");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &pair.relay_ns])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "three_way_inside", "--nocapture", "--test-threads=1"])
            .env(INSIDE_ENV, env);
        let (ok, text) = run_bounded(cmd, Duration::from_secs(120));
        println!("{text}");
        if !ok {
            failed.push(name.clone());
        }
        drop(pair);
    }
    println!("three-way agreement on {} examples in {:.1?}", examples.len(), started.elapsed());

    assert!(failed.is_empty(), "the three servers disagree (or one failed) on {failed:?}; see above");
}

/// What is missing to run this test, if anything.
fn missing() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("needs root to make network namespaces".into());
    }
    ["ip", "ss", "dhcpd", "kea-dhcp4"]
        .into_iter()
        .find(|t| find(t).is_none())
        .map(|t| format!("`{t}` not found (Debian packages iproute2, isc-dhcp-server, kea-dhcp4-server)"))
}

fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/sbin"]).map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

/// `ztpc build examples/NAME/fabric.kdl [--env-file demo.env] -o out`, in process.
fn build(name: &str, out: &Path) {
    let dir = ztp_tests::root().join("examples").join(name);
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    let env = ztp_tests::example_env(name);
    let lookup = |k: &str| env.get(k).cloned();
    let host = ztpc::Host { base_dir: dir.clone(), env: &lookup };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: ztpc::cli::relative_from(out, &dir) };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors(), "{name} does not build");
    ztpc::emit::emit(&o.artifacts.unwrap(), out).unwrap();
}

fn manifest(out: &Path) -> Manifest {
    serde_json::from_str(&std::fs::read_to_string(out.join("runtime.json")).unwrap()).unwrap()
}

/// The ZTP server's subnet comes first: the server sits on it (dhcpd and Kea serve
/// only from an interface on a declared subnet) and reaches the others through the
/// relay's address there.
type Net = (Ipv4Addr, u8);
fn addressing(m: &Manifest) -> (Net, Vec<Net>, Vec<Net>) {
    let subnets = &m.dhcp.subnets;
    let home = agreement::home(m);
    let server = (m.server.address, subnets[home].cidr.prefix);
    assert_ne!(giaddr(m, home), m.server.address, "the relay needs an address of its own");
    let mut order: Vec<usize> = vec![home];
    order.extend((0..subnets.len()).filter(|i| *i != home));
    let relays = order.iter().map(|i| (giaddr(m, *i), subnets[*i].cidr.prefix)).collect();
    let routed = order[1..].iter().map(|i| (subnets[*i].cidr.network, subnets[*i].cidr.prefix)).collect();
    (server, relays, routed)
}

/// Run `cmd` with its output collected, killing it (by PID) after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = o.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{text}\ntimed out after {limit:?}")),
    }
}

// ---------------------------------------------------------------- helper: the runtime

/// Runs `ztp-runtime` in the server namespace when [`servers::RUNTIME_ENV`] is set.
#[test]
fn three_way_runtime_helper() {
    if let Ok(args) = std::env::var(servers::RUNTIME_ENV) {
        servers::runtime_main(&args);
    }
}

// ---------------------------------------------------------------- helper: the relay

/// Runs inside the relay namespace when [`INSIDE_ENV`] is set: start each server, play
/// every client, then compare.
#[test]
fn three_way_inside() {
    let Ok(env) = std::env::var(INSIDE_ENV) else { return };
    let mut it = env.lines();
    let (name, out, work, server_ns) = (
        it.next().unwrap(),
        PathBuf::from(it.next().unwrap()),
        PathBuf::from(it.next().unwrap()),
        it.next().unwrap(),
    );
    let m = manifest(&out);
    let mut cases = agreement::cases(&m);
    let giaddrs: Vec<Ipv4Addr> = (0..m.dhcp.subnets.len()).map(|i| giaddr(&m, i)).collect();
    let relay = Relay::bind(m.server.address, &giaddrs).expect("bind giaddr:67 in the relay namespace");
    let mut answers: Answers = BTreeMap::new();
    let mut logs = Vec::new();
    for (round, kind) in Kind::ALL.into_iter().enumerate() {
        let t = Instant::now();
        let server = servers::start(kind, server_ns, m.server.address, &out, &work);
        let mut got = Vec::new();
        for (i, c) in cases.iter_mut().enumerate() {
            // A new xid per server: a late duplicate from the last one is never taken.
            c.client.xid = (round as u32 + 1) << 16 | i as u32;
            // The first exchange also waits for the server to finish starting.
            let patience = Duration::from_secs(if i == 0 { 10 } else { 3 });
            got.push(relay.dora(&c.client, patience));
        }
        println!("{name}: {} answered {} clients in {:.1?}", kind.name(), cases.len(), t.elapsed());
        logs.push((kind, server.log_tail()));
        drop(server);
        answers.insert(kind, got);
    }
    let v = agreement::compare(&m, &cases, &answers);
    println!("{name}: who got what (ACK yiaddr and the platform's boot option, as all three agree)");
    print!("{}", v.table);
    for (what, (n, example)) in &v.notes {
        println!("{name}: note: {what} ({n} answers; e.g. {example})");
    }
    if !v.problems.is_empty() {
        for (kind, tail) in &logs {
            println!("---- {} log (last lines)\n{tail}", kind.name());
        }
        panic!("{name}: {} disagreement(s):\n  {}", v.problems.len(), v.problems.join("\n  "));
    }
}
