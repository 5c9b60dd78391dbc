//! Secrets never leak along a whole device journey through the real `ztp-runtime`
//! binary, logging at TRACE: examples/dc1 (moved onto loopback, its controller a fake
//! one) compiled in memory with demo.env; DHCP through a relay for the MAC-reserved
//! spine and the option-82 leaf (when root: the relay listens on port 67); TFTP and
//! HTTP fetches of the bootstrap scripts; status reports (JSON and NX-OS's query form);
//! agent installs through the fake controller; spoofed, malformed, traversal and
//! unauthorised requests; and every read of the API. Every log line, every API answer,
//! every refusal and `--help` are searched for every secret of the fabric: the demo.env
//! passwords, the admin token and the tokens the controller issued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "agent_support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType, relay};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use support::{DC1, Reply, agent_body, http, start_mock, wait_job};

const ADMIN: &str = "journey-admin-token-5f2b9c";
const WITHIN: Duration = Duration::from_secs(20);

struct Runtime {
    child: Child,
    http: SocketAddr,
    tftp: SocketAddr,
    dhcp: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn spawn(dir: &Path, state: &Path, token: &Path) -> Runtime {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .arg(dir.join("fabric.kdl"))
        .arg("--env-file")
        .arg(dir.join("demo.env"))
        .arg("--state")
        .arg(state)
        .arg("--admin-token-file")
        .arg(token)
        .args(["--dhcp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--tftp-listen", "127.0.0.1:0", "--log-format", "json"])
        .env("ZTP_LOG", "trace")
        .env("ZTP_AGENT_BACKOFF", "0.02")
        .env("ZTP_AGENT_BACKOFF_MAX", "0.08")
        .env("ZTP_AGENT_POLL", "0.02")
        .env("ZTP_AGENT_SETTLE", "0.3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            keep.lock().unwrap().push(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "listening" {
                let svc = v["fields"]["service"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((svc, v["fields"]["address"].as_str().unwrap_or_default().to_string()));
            }
            keep.lock().unwrap().push(line);
        }
    });
    let mut a = std::collections::HashMap::new();
    while a.len() < 3 {
        let (svc, addr) = rx.recv_timeout(Duration::from_secs(30)).expect("runtime listeners");
        a.insert(svc, addr.parse::<SocketAddr>().unwrap());
    }
    Runtime { child, http: a["http"], tftp: a["tftp"], dhcp: a["dhcp"], log }
}

/// DISCOVER then REQUEST through a relay at `giaddr`; the acknowledged address.
fn dora(
    server: SocketAddr,
    giaddr: Ipv4Addr,
    mac: [u8; 6],
    opt82: Option<(&str, &str)>,
    xid: u32,
) -> Ipv4Addr {
    let relay_sock = UdpSocket::bind((giaddr, 67)).expect("relay address on port 67");
    relay_sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let msg = |kind, xid| {
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootRequest).set_chaddr(&mac).set_xid(xid).set_giaddr(giaddr).set_hops(1);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some((remote, circuit)) = opt82 {
            let mut info = relay::RelayAgentInformation::default();
            info.insert(relay::RelayInfo::AgentCircuitId(circuit.as_bytes().to_vec()));
            info.insert(relay::RelayInfo::AgentRemoteId(remote.as_bytes().to_vec()));
            m.opts_mut().insert(DhcpOption::RelayAgentInformation(info));
        }
        m
    };
    let ask = |m: &v4::Message| -> v4::Message {
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        relay_sock.send_to(&b, server).unwrap();
        let mut buf = [0u8; 1500];
        loop {
            let (n, _) = relay_sock.recv_from(&mut buf).expect("a DHCP answer");
            let r = v4::Message::decode(&mut Decoder::new(&buf[..n])).unwrap();
            if r.xid() == m.xid() {
                return r;
            }
        }
    };
    let offer = ask(&msg(MessageType::Discover, xid));
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    let mut req = msg(MessageType::Request, xid + 1);
    req.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    // A client names the server by the OFFER's option 54 (siaddr is 0.0.0.0, as dhcpd
    // and Kea leave it with no next-server).
    let server_id = match offer.opts().get(v4::OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => *a,
        other => panic!("an OFFER without option 54: {other:?}"),
    };
    req.opts_mut().insert(DhcpOption::ServerIdentifier(server_id));
    let ack = ask(&req);
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    ack.yiaddr()
}

/// A TFTP read to the end: the bytes (the content is the device's, not checked here).
fn tftp_get(server: SocketAddr, name: &str) -> Result<Vec<u8>, String> {
    tftp_get_from(server, "127.0.0.1", name)
}

/// [`tftp_get`] from the address `from`, as a device holding it would ask.
fn tftp_get_from(server: SocketAddr, from: &str, name: &str) -> Result<Vec<u8>, String> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(format!("\x00\x01{name}\x00octet\x00").as_bytes(), server).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 600];
    loop {
        let (n, from) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        match buf[1] {
            3 => {
                out.extend_from_slice(&buf[4..n]);
                s.send_to(&[0, 4, buf[2], buf[3]], from).unwrap();
                if n < 516 {
                    return Ok(out);
                }
            }
            5 => return Err(String::from_utf8_lossy(&buf[4..n]).into_owned()),
            op => return Err(format!("opcode {op}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_anywhere_along_a_device_journey() {
    let root = is_root();
    if !root && std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("ZTP_REQUIRE_ORACLES=1 but the DHCP part of the journey needs root (a relay on port 67)");
    }
    let mock = start_mock(None).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dc1");
    copy_dir(Path::new(DC1), &dir);
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    let text = support::with_controller(&mock.url)(text).replace("\"10.1.", "\"127.1.");
    std::fs::write(dir.join("fabric.kdl"), &text).unwrap();
    let token = tmp.path().join("admin-token");
    std::fs::write(&token, format!("{ADMIN}\n")).unwrap();
    let env = std::fs::read_to_string(dir.join("demo.env")).unwrap();
    let mut secrets: Vec<String> = ztpc::cli::parse_env_file(&env).into_values().collect();
    secrets.push(ADMIN.to_string());
    assert!(secrets.len() >= 5, "demo.env holds the fabric's passwords");

    let rt = spawn(&dir, &tmp.path().join("state"), &token);
    let (spine, leaf) = ("127.1.101.11", "127.1.102.21");
    let mut answers: Vec<(String, Reply)> = Vec::new();
    // Keep an answer for the search at the end, and hand it on.
    macro_rules! note {
        ($what:expr, $r:expr) => {{
            let r: Reply = $r;
            answers.push(($what.to_string(), r.clone()));
            r
        }};
    }

    // DHCP, through relays on the two segments.
    if root {
        let pid = std::process::id();
        let g1 = Ipv4Addr::new(127, 1, 101, 200 + (pid % 50) as u8);
        let g2 = Ipv4Addr::new(127, 1, 102, 200 + (pid % 50) as u8);
        let (dhcp, xid) = (rt.dhcp, pid);
        let (a, b) = tokio::task::spawn_blocking(move || {
            let a = dora(dhcp, g1, [0x52, 0x54, 0, 0x6f, 0xff, 0x4f], None, xid);
            let b =
                dora(dhcp, g2, [0x52, 0x54, 0, 0x6f, 0xff, 0x50], Some(("mgmt-sw1", "ge-0/0/1")), xid + 10);
            (a, b)
        })
        .await
        .unwrap_or_else(|e| {
            let log = rt.log.lock().unwrap().join("\n");
            panic!("DHCP through the relays failed ({e}); the runtime's log:\n{log}")
        });
        assert_eq!((a.to_string().as_str(), b.to_string().as_str()), (spine, leaf), "the reservations");
    } else {
        println!("SKIPPED (part): DHCP of the journey needs root; the rest runs");
    }

    // The bootstrap scripts: TFTP (platform script) and HTTP (each device's own).
    let tftp = rt.tftp;
    let eos = tokio::task::spawn_blocking(move || tftp_get(tftp, "ztp-eos.sh")).await.unwrap();
    assert!(eos.is_ok_and(|b| !b.is_empty()), "the EOS bootstrap over TFTP");
    let refused = tokio::task::spawn_blocking(move || tftp_get(tftp, "../etc/shadow")).await.unwrap();
    assert!(refused.is_err());
    // What the devices themselves fetch does carry the secrets (the control: the values
    // searched for below are the ones in play); only the devices' own fetches may.
    let mut served = String::new();
    for (ip, path) in [(spine, "/devices/spine1.sh"), (leaf, "/devices/leaf1.sh"), (spine, "/ztp.json")] {
        let r = http(rt.http, ip, "GET", path, &[], None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        served.push_str(&r.body);
    }
    // A device script from any other address: 403 over HTTP, an access violation over
    // TFTP, and the attempt in the owner's device log.
    let r = http(rt.http, spine, "GET", "/devices/leaf1.sh", &[], None).await;
    assert_eq!(r.status, 403, "leaf1's script fetched by spine1's address: {}", r.body);
    note!("spoofed script fetch", r);
    let r = http(rt.http, "127.0.0.1", "GET", "/devices/spine1.sh", &[], None).await;
    assert_eq!(r.status, 403, "spine1's script fetched from 127.0.0.1: {}", r.body);
    let own = tokio::task::spawn_blocking(move || tftp_get_from(tftp, spine, "devices/spine1.sh"));
    assert!(own.await.unwrap().is_ok_and(|b| !b.is_empty()), "spine1's own script over TFTP");
    let other = tokio::task::spawn_blocking(move || tftp_get_from(tftp, spine, "devices/leaf1.sh"));
    let other = other.await.unwrap();
    assert!(
        other.as_ref().is_err_and(|e| e.starts_with("Permission denied")),
        "leaf1's script over TFTP from spine1: {other:?}"
    );
    // Device events are written in batches (events.rs: up to 20 ms later), so the log
    // is read again until the line is there or 5 s have passed.
    let mut leaf_log = http(rt.http, leaf, "GET", &format!("/api/ztp/device/{leaf}/log"), &[], None).await;
    for _ in 0..50 {
        if leaf_log.body.contains("devices/leaf1.sh refused to 127.1.101.11") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        leaf_log = http(rt.http, leaf, "GET", &format!("/api/ztp/device/{leaf}/log"), &[], None).await;
    }
    assert!(
        leaf_log.body.contains("devices/leaf1.sh refused to 127.1.101.11"),
        "the refusal is in leaf1's log: {}",
        leaf_log.body
    );
    for bad in ["/../fabric.kdl", "/%2e%2e/demo.env", "/devices/nothere.sh", "/demo.env"] {
        note!(bad, http(rt.http, spine, "GET", bad, &[], None).await);
    }

    // Status reports, as the scripts send them.
    for (ip, task) in [(spine, "Starting ZTP"), (leaf, "Upgrading image"), (spine, "Configuring")] {
        let body = format!(r#"{{"ip":"{ip}","task":"{task}","log":"step ok"}}"#);
        let r = note!("report", http(rt.http, ip, "POST", "/api/ztp/device/log", &[], Some(&body)).await);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let q = format!("/api/ztp/device/log?ip={leaf}&task=ZTP+Done&log=copy+ok");
    assert_eq!(note!("query report", http(rt.http, leaf, "GET", &q, &[], None).await).status, 200);

    // Agent installs through the fake controller, from each device.
    for ip in [spine, leaf] {
        let r = note!(
            "create_agent",
            http(rt.http, ip, "POST", "/api/ztp/create_agent", &[], Some(&agent_body(ip, ""))).await
        );
        assert!(r.status == 200 || r.status == 202, "create_agent {}: {}", r.status, r.body);
        let id = r.json()["id"].as_str().unwrap().to_string();
        let job = wait_job(rt.http, &id, WITHIN).await;
        assert_eq!(job["state"], "connected", "{job}");
        answers.push(("job".into(), Reply { status: 200, body: job.to_string() }));
        let body = format!(r#"{{"ip":"{ip}","task":"Device Ready","log":"agent up"}}"#);
        note!("ready", http(rt.http, ip, "POST", "/api/ztp/device/log", &[], Some(&body)).await);
    }

    // Refusals: spoofed, malformed, unauthorised.
    let spoof = format!(r#"{{"ip":"{leaf}","task":"ZTP Failed"}}"#);
    assert_eq!(
        note!("spoof", http(rt.http, spine, "POST", "/api/ztp/device/log", &[], Some(&spoof)).await).status,
        403
    );
    let r = http(rt.http, spine, "POST", "/api/ztp/create_agent", &[], Some(&agent_body(leaf, ""))).await;
    assert_eq!(note!("spoofed agent", r).status, 403);
    let pw = ztpc::cli::parse_env_file(&env)["ZTP_DEVICE_PASSWORD"].clone();
    let bad = format!(r#"{{"management_ip":"{spine}","password":{{"x":"{pw}"}}}}"#);
    assert_eq!(
        note!("bad agent", http(rt.http, spine, "POST", "/api/ztp/create_agent", &[], Some(&bad)).await)
            .status,
        400
    );
    let bad = format!(r#"{{"ip":"{spine}","task":"x","password":"{pw}"}}"#);
    assert_eq!(
        note!("unknown field", http(rt.http, spine, "POST", "/api/ztp/device/log", &[], Some(&bad)).await)
            .status,
        400
    );
    let wrong = [("AuthToken", "not-the-token")];
    let r = http(rt.http, "127.0.0.1", "DELETE", &format!("/api/ztp/device/{spine}"), &wrong, None).await;
    assert_eq!(note!("delete", r).status, 403);

    // Every read of the API.
    for path in [
        "/api/ztp/device/status".to_string(),
        format!("/api/ztp/device/status/{spine}"),
        format!("/api/ztp/device/status/{leaf}"),
        format!("/api/ztp/device/{spine}/log"),
        format!("/api/ztp/device/{leaf}/log"),
        "/api/ztp/services".to_string(),
        "/api/ztp/agents".to_string(),
        "/metrics".to_string(),
        "/healthz".to_string(),
    ] {
        let r = note!(&path, http(rt.http, "127.0.0.1", "GET", &path, &[], None).await);
        assert_eq!(r.status, 200, "{path}");
    }
    let status = answers.iter().find(|(w, _)| w == "/api/ztp/device/status").unwrap().1.json();
    assert!(
        status.as_array().unwrap().iter().filter(|d| d["status"] == "completed").count() == 2,
        "{status}"
    );

    // The tokens the controller issued are secrets too.
    secrets.extend(mock.state.lock().unwrap().tokens.keys().cloned());
    assert!(secrets.len() >= 6, "the controller issued tokens");
    let help = Command::new(env!("CARGO_BIN_EXE_ztp-runtime")).arg("--help").output().unwrap();
    answers.push((
        "--help".into(),
        Reply { status: 0, body: String::from_utf8_lossy(&help.stdout).into_owned() },
    ));

    // Let the last events reach the log, then search everything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let log = rt.log.lock().unwrap().clone();
    assert!(log.len() > 50, "the TRACE log was captured ({} lines)", log.len());
    assert!(log.iter().any(|l| l.contains("device report")), "reports are logged");
    let in_play = secrets.iter().filter(|s| served.contains(s.as_str())).count();
    assert!(in_play >= 3, "the device scripts carry the fabric's passwords ({in_play} found)");
    for s in &secrets {
        assert!(s.len() >= 5, "a secret long enough to search for: {s:?}");
        for line in &log {
            assert!(!line.contains(s.as_str()), "a secret in a log line: {line}");
        }
        for (what, r) in &answers {
            assert!(!r.body.contains(s.as_str()), "a secret in the answer to {what}: {}", r.body);
        }
    }
    println!(
        "secrets journey: {} secrets searched in {} log lines and {} answers ({:?})",
        secrets.len(),
        log.len(),
        answers.len(),
        started.elapsed()
    );
}
