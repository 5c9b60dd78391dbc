//! Every per-client limit of `ztp-runtime`, exceeded over the wire against the real
//! binary: HTTP body size (413), header size and header count (431), an idle
//! connection and a slow-loris client dribbling its headers (both cut off by the
//! header-read timeout), TFTP transfers in total (the per-client cap is in
//! tftp_wire.rs), and DHCP packets per second from one hardware address (the excess
//! counted as `rate_limited` in /metrics while another client is still answered).
//!
//! Loopback only. DHCP requests are relayed (giaddr set), so the server's replies go
//! to a loopback relay address on port 67 where nothing listens: no root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{Encodable, Encoder};
use ztp_runtime::http::{HEADER_TIMEOUT, MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS};
use ztp_runtime::tftp::{MAX_PER_CLIENT, MAX_TOTAL, SLOT_WAIT};

const FABRIC: &str = r#"
fabric "limits" {
    ztp-server "127.0.0.1"
    dhcp {
        subnet "127.0.0.0/16" {
            router "127.0.0.1"
            pool "127.0.1.0" "127.0.1.255"
        }
    }
    platform "eos"
    device "leaf1" platform="eos" {
        mac "52:54:00:7f:00:11"
        address "127.0.0.11"
    }
}
"#;

struct Runtime {
    child: Child,
    http: SocketAddr,
    tftp: SocketAddr,
    dhcp: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dhcp: bool) -> Runtime {
    let dir = tempfile::tempdir().unwrap();
    let fabric = dir.path().join("fabric.kdl");
    std::fs::write(&fabric, FABRIC).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"));
    cmd.arg(&fabric).arg("--state").arg(dir.path().join("state"));
    cmd.args(["--http-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0", "--log-format", "json"]);
    if dhcp {
        cmd.args(["--dhcp-listen", "127.0.0.1:0"]);
    } else {
        cmd.arg("--no-dhcp");
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "listening" {
                let svc = v["fields"]["service"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((svc, v["fields"]["address"].as_str().unwrap_or_default().to_string()));
            }
        }
    });
    let mut addrs = std::collections::HashMap::new();
    let want = if dhcp { 3 } else { 2 };
    while addrs.len() < want {
        let (svc, a) = rx.recv_timeout(Duration::from_secs(20)).expect("runtime listeners");
        addrs.insert(svc, a.parse::<SocketAddr>().unwrap());
    }
    Runtime { child, http: addrs["http"], tftp: addrs["tftp"], dhcp: addrs.get("dhcp").copied(), _dir: dir }
}

/// Send `raw`, read the answer to the end: the status code (0 if none).
fn http_raw(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before it has read everything we send.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn report_with(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /api/ztp/device/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn http_body_header_size_and_count_are_bounded() {
    let rt = start(false);
    let ok = r#"{"ip":"127.0.0.1","task":"Device Ready"}"#;
    assert_eq!(http_raw(rt.http, &report_with("", ok)), 200, "the baseline report is accepted");

    let big = format!(r#"{{"ip":"127.0.0.1","log":"{}"}}"#, "x".repeat(MAX_BODY));
    assert_eq!(http_raw(rt.http, &report_with("", &big)), 413, "body over MAX_BODY");

    let one_big = format!("X-Filler: {}\r\n", "a".repeat(MAX_HEADER_BYTES));
    assert_eq!(http_raw(rt.http, &report_with(&one_big, ok)), 431, "headers over MAX_HEADER_BYTES");

    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(http_raw(rt.http, &report_with(&many, ok)), 431, "more than MAX_HEADERS headers");
    let fewer: String = (0..MAX_HEADERS - 8).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(http_raw(rt.http, &report_with(&fewer, ok)), 200, "under the header count is fine");
}

/// Wait until the server closes `s` (read returns 0 or an error); how long it took.
fn closed_after(mut s: TcpStream, started: Instant, dribble: bool) -> Duration {
    let limit = HEADER_TIMEOUT + Duration::from_secs(5);
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 512];
    let mut n = 0;
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => return started.elapsed(), // a 408 or similar, then the close
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(_) => return started.elapsed(),
        }
        if dribble {
            // One more header byte every half second: never a complete header block.
            n += 1;
            if s.write_all(if n % 2 == 0 { b"a" } else { b"b" }).is_err() {
                return started.elapsed();
            }
        }
    }
    panic!("the connection was still open after {limit:?}");
}

#[test]
fn idle_and_slow_loris_connections_are_cut_off() {
    let rt = start(false);
    let t = Instant::now();
    let idle = TcpStream::connect(rt.http).unwrap();
    let mut slow = TcpStream::connect(rt.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let slow_thread = std::thread::spawn(move || closed_after(slow, t, true));
    let idle_after = closed_after(idle, t, false);
    let slow_after = slow_thread.join().unwrap();
    for (what, after) in [("idle", idle_after), ("slow-loris", slow_after)] {
        assert!(after >= HEADER_TIMEOUT - Duration::from_secs(1), "{what} closed too early: {after:?}");
        assert!(after <= HEADER_TIMEOUT + Duration::from_secs(3), "{what} closed late: {after:?}");
    }
    // The server is still serving others.
    assert_eq!(http_raw(rt.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 200);
}

/// Start a TFTP read from `from` and take the first DATA block without acknowledging
/// it: the transfer stays in flight. Ok((socket, the transfer's server address)) or
/// Err(error message).
fn hold_transfer(server: SocketAddr, from: Ipv4Addr) -> Result<(UdpSocket, SocketAddr), String> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(b"\x00\x01ztp-eos.sh\x00octet\x00", server).unwrap();
    let mut buf = [0u8; 1024];
    let (n, tid) = s.recv_from(&mut buf).map_err(|e| format!("no reply: {e}"))?;
    match buf[1] {
        3 => Ok((s, tid)),
        5 => Err(String::from_utf8_lossy(&buf[4..n]).trim_end_matches('\0').to_string()),
        op => Err(format!("opcode {op}")),
    }
}

/// Acknowledge block after block, from block 1 (already received), to the last.
fn finish_transfer(s: &UdpSocket, tid: SocketAddr) {
    let mut block: u16 = 1;
    let mut buf = [0u8; 1024];
    loop {
        s.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid).unwrap();
        let (n, _) = s.recv_from(&mut buf).expect("next block");
        assert_eq!(buf[1], 3, "DATA");
        block = u16::from_be_bytes([buf[2], buf[3]]);
        if n < 4 + 512 {
            s.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
            return;
        }
    }
}

/// Past the total, a request waits in line (it is not refused) and is served as soon
/// as a transfer in flight ends; past the per-client cap it is refused at once.
#[test]
fn tftp_transfers_in_total_are_bounded() {
    let rt = start(false);
    let clients = MAX_TOTAL / MAX_PER_CLIENT;
    let mut held = Vec::new();
    for c in 0..clients {
        for _ in 0..MAX_PER_CLIENT {
            let ip = Ipv4Addr::new(127, 0, 60, 1 + c as u8);
            held.push(
                hold_transfer(rt.tftp, ip).unwrap_or_else(|e| panic!("transfer {} refused: {e}", held.len())),
            );
        }
    }
    assert_eq!(held.len(), MAX_TOTAL);
    let over = hold_transfer(rt.tftp, Ipv4Addr::new(127, 0, 60, 1)).map(|_| ());
    assert_eq!(over, Err("server busy, retry later".to_string()), "over the per-client cap");
    let server = rt.tftp;
    let t0 = Instant::now();
    let waiting = std::thread::spawn(move || hold_transfer(server, Ipv4Addr::new(127, 0, 60, 200)));
    std::thread::sleep(Duration::from_millis(1500));
    // One client reads its transfer to the end (async-tftp ignores a client's error
    // packet: only the end or the retries running out frees a slot).
    let (sock, tid) = held.pop().unwrap();
    finish_transfer(&sock, tid);
    let got = waiting.join().unwrap();
    assert!(got.is_ok(), "transfer {} over the total waits and is served: {:?}", MAX_TOTAL + 1, got.err());
    assert!(t0.elapsed() >= Duration::from_millis(1400), "it waited for a slot: {:?}", t0.elapsed());
    assert!(t0.elapsed() < SLOT_WAIT, "{:?}", t0.elapsed());
}

fn metric(http: SocketAddr, outcome: &str, kind: &str) -> f64 {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let key = format!("type=\"{kind}\",outcome=\"{outcome}\"");
    out.lines()
        .filter(|l| l.starts_with("ztp_dhcp_packets_total") && l.contains(&key))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn discover(mac: [u8; 6], xid: u32, giaddr: Ipv4Addr) -> Vec<u8> {
    let mut m = v4::Message::default();
    m.set_opcode(v4::Opcode::BootRequest).set_chaddr(&mac).set_xid(xid).set_giaddr(giaddr).set_hops(1);
    m.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).unwrap();
    buf
}

#[test]
fn dhcp_packets_per_client_are_rate_limited() {
    use ztp_runtime::dhcp::ratelimit::{BURST, PER_SEC};
    let rt = start(true);
    let server = rt.dhcp.unwrap();
    // An address in the fabric's subnet where nothing listens on port 67.
    let pid = std::process::id();
    let giaddr = Ipv4Addr::new(127, 0, 240 + (pid % 10) as u8, 1 + (pid / 10 % 250) as u8);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let flood = 400u32;
    let t = Instant::now();
    for i in 0..flood {
        sock.send_to(&discover([2, 0xee, 0, 0, 0, 1], i, giaddr), server).unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2)); // stay inside the socket buffer
        }
    }
    let secs = t.elapsed().as_secs_f64();
    sock.send_to(&discover([2, 0xee, 0, 0, 0, 2], 9999, giaddr), server).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut limited, mut offered) = (0.0, 0.0);
    while Instant::now() < deadline {
        limited = metric(rt.http, "rate_limited", "other");
        offered = metric(rt.http, "offer", "discover");
        if limited + offered >= f64::from(flood + 1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let allowed_max = BURST + PER_SEC * (secs + 0.5) + 1.0;
    println!(
        "dhcp rate limit: {flood} DISCOVERs from one MAC in {secs:.2} s: {offered} offers, {limited} dropped"
    );
    assert_eq!(limited + offered, f64::from(flood + 1), "every packet either answered or rate-limited");
    assert!(offered <= allowed_max, "{offered} offers exceed the bucket ({allowed_max})");
    assert!(offered >= BURST, "the burst ({BURST}) passes, and the other client too: {offered}");
    assert!(limited >= f64::from(flood) - allowed_max, "the excess is dropped: {limited}");
}
