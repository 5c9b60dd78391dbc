//! Shared helpers for the web page tests (included with `#[path]`): examples/lab on
//! 127.0.0.0/24 with a 32 MiB image for spine1's platform, the `ztp-runtime` binary
//! on loopback port 0 with an admin token, HTTP from a chosen source address (a device
//! may only report for itself), and a DHCP exchange relayed by 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Encodable, Encoder};

#[path = "listening_support.rs"]
mod listening;

pub const TOKEN: &str = "web-test-admin-token";
pub const IMAGE_LEN: usize = 32 * 1024 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// examples/lab copied to `dir` (fabric moved onto 127.0.0.0/24, EOS given the image
/// `images/lab.bin`) and built into `dir/out`; returns `dir/out`.
pub fn build_lab(dir: &Path) -> PathBuf {
    let lab = root().join("examples/lab");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    for s in ["root-password", "device-password"] {
        std::fs::copy(lab.join("secrets").join(s), dir.join("secrets").join(s)).unwrap();
    }
    std::fs::write(dir.join("images/lab.bin"), vec![0x5au8; IMAGE_LEN]).unwrap();
    let text = std::fs::read_to_string(lab.join("fabric.kdl")).unwrap().replace("10.99.0.", "127.0.0.");
    let text =
        text.replacen("    platform \"eos\"\n", "    platform \"eos\" { image \"images/lab.bin\" }\n", 1);
    assert!(text.contains("images/lab.bin"), "examples/lab changed: no `platform \"eos\"` line");
    std::fs::write(dir.join("fabric.kdl"), &text).unwrap();
    let host = ztpc::Host { base_dir: dir.to_path_buf(), env: &|_| None };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: dir.display().to_string() };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors(), "{:?}", o.diagnostics);
    let out = dir.join("out");
    ztpc::emit::emit(&o.artifacts.unwrap(), &out).unwrap();
    out
}

pub struct Runtime {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Runtime {
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.addrs[service]
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serve `artifacts` with DHCP, TFTP and HTTP on loopback port 0 and an admin token;
/// the real ports come from the "listening" log lines.
pub fn start(artifacts: &Path, state: &Path) -> Runtime {
    start_with(artifacts, state, &[], 3)
}

/// [`start`] with more arguments, waiting for `services` "listening" lines.
pub fn start_with(artifacts: &Path, state: &Path, extra: &[&str], services: usize) -> Runtime {
    let token = state.join("admin-token");
    std::fs::write(&token, TOKEN).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .args(["--artifacts", artifacts.to_str().unwrap(), "--state", state.to_str().unwrap()])
        .args([
            "--dhcp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--tftp-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-token-file", token.to_str().unwrap(), "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addrs = listening::listening(&mut child, services);
    let rt = Runtime { child, addrs };
    wait_for(|| request(rt.addr("http"), None, "GET", "/healthz", "").0 == 200, "healthz 200");
    rt
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A TCP connection to `to` from `from` (any 127/8 address is local on Linux).
pub fn connect(to: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(ip) = from {
        s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    }
    s.connect_timeout(&to.into(), Duration::from_secs(2)).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One HTTP/1.1 exchange: (status, headers, body).
pub fn request(
    to: SocketAddr,
    from: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    request_with(to, from, method, path, body, &[])
}

pub fn request_with(
    to: SocketAddr,
    from: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
    headers: &[&str],
) -> (u16, String, String) {
    let mut s = connect(to, from.map(|f| f.parse().unwrap()));
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

/// A status report from the device at `ip`, from its own address.
pub fn report(http: SocketAddr, ip: &str, task: &str, log: &str) -> serde_json::Value {
    let body = serde_json::json!({"ip": ip, "system_id": "SN1", "platform": "eos", "task": task, "log": log});
    let (code, _, row) = request(http, Some(ip), "POST", "/api/ztp/device/log", &body.to_string());
    assert_eq!(code, 200, "{row}");
    serde_json::from_str(&row).unwrap()
}

fn dhcp_packet(mt: MessageType, mac: [u8; 6], opts: &[DhcpOption]) -> Vec<u8> {
    let mut m = v4::Message::default();
    m.set_opcode(v4::Opcode::BootRequest).set_chaddr(&mac).set_xid(0x7e7e).set_giaddr(Ipv4Addr::LOCALHOST);
    m.opts_mut().insert(DhcpOption::MessageType(mt));
    for o in opts {
        m.opts_mut().insert(o.clone());
    }
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

/// DISCOVER then REQUEST for `mac`'s reserved `addr`, relayed by 127.0.0.1 (the
/// replies go to 127.0.0.1:67, where nobody listens); returns once the leased
/// address's device row exists.
pub fn lease(rt: &Runtime, mac: [u8; 6], addr: Ipv4Addr) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&dhcp_packet(MessageType::Discover, mac, &[]), rt.addr("dhcp")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let opts =
        [DhcpOption::RequestedIpAddress(addr), DhcpOption::ServerIdentifier(Ipv4Addr::new(127, 0, 0, 5))];
    udp.send_to(&dhcp_packet(MessageType::Request, mac, &opts), rt.addr("dhcp")).unwrap();
    let path = format!("/api/ztp/device/status/{addr}");
    wait_for(|| request(rt.addr("http"), None, "GET", &path, "").0 == 200, "the leased device's row");
}
