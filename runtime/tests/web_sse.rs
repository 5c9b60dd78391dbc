//! The web page's server side without a browser: `GET /` (one self-contained page
//! with a hash-based Content-Security-Policy) and the event stream `GET /api/events`
//! (a snapshot, then device rows, log lines, deletions and download progress as they
//! happen), against the `ztp-runtime` binary on loopback.
#![allow(clippy::unwrap_used)] // test code: a failed step should stop the test loudly

#[path = "web_support.rs"]
mod web_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use web_support::{IMAGE_LEN, TOKEN, build_lab, connect, lease, report, request, request_with, start};

/// A client of `GET /api/events`.
struct Events {
    r: BufReader<std::net::TcpStream>,
}

impl Events {
    fn open(http: SocketAddr) -> Events {
        let mut s = connect(http, None);
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" {
                break;
            }
            head.push_str(&l);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
        Events { r }
    }

    /// The next event (chunked framing: size lines are skipped, events are whole lines).
    fn next(&mut self) -> (String, serde_json::Value) {
        let (mut event, mut data) = (String::new(), String::new());
        loop {
            let mut l = String::new();
            assert!(self.r.read_line(&mut l).unwrap() > 0, "event stream closed");
            let l = l.trim_end_matches(['\r', '\n']);
            if let Some(e) = l.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = l.strip_prefix("data: ") {
                data = d.to_string();
            } else if l.is_empty() && !event.is_empty() {
                return (event, serde_json::from_str(&data).unwrap());
            }
        }
    }

    /// Skip events until one satisfies `want` (bounded in time).
    fn until(&mut self, what: &str, want: impl Fn(&str, &serde_json::Value) -> bool) -> serde_json::Value {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            let (e, v) = self.next();
            if want(&e, &v) {
                return v;
            }
        }
        panic!("no {what} event in time");
    }
}

#[test]
fn page_and_event_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = build_lab(tmp.path());
    let rt = start(&out, state.path());
    let http = rt.addr("http");

    // The page: one document, its script and style allowed by hash, nothing else.
    let (code, head, body) = request(http, None, "GET", "/", "");
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    let csp = head.lines().find(|l| l.starts_with("content-security-policy:")).unwrap();
    assert!(csp.contains("default-src 'none'") && csp.matches("'sha256-").count() == 2, "{csp}");
    assert!(body.contains("<table id=\"devices\"") && body.contains("new EventSource(\"/api/events\")"));
    let (code, _, body) = request(http, None, "HEAD", "/", "");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(request(http, None, "POST", "/api/events", "").0, 405, "the stream is GET only");

    let mut ev = Events::open(http);
    let (name, snap) = ev.next();
    assert_eq!(name, "snapshot");
    assert_eq!(snap["devices"], serde_json::json!([]));
    assert_eq!(snap["services"]["fabric"], "lab");
    assert_eq!(snap["services"]["generation"].as_str().unwrap().len(), 16);

    // A lease: the row (with name and MAC) and the DHCP log lines arrive.
    lease(&rt, [0x52, 0x54, 0, 0x99, 0, 0x11], Ipv4Addr::new(127, 0, 0, 11));
    let row = ev.until("device", |e, v| e == "device" && v["ip_addr"] == "127.0.0.11");
    assert_eq!((row["name"].as_str(), row["mac"].as_str()), (Some("spine1"), Some("52:54:00:99:00:11")));
    assert_eq!(row["status"], "unknown");

    // A report: the row and its log line, worded as the stored log words it.
    report(http, "127.0.0.11", "Checking version", "running 4.29.0F");
    let row = ev.until("device", |e, v| e == "device" && v["status"] == "in_progress");
    assert_eq!(row["task"], "Checking version");
    let line = ev.until("log", |e, v| e == "log" && v["kind"] == "report");
    assert_eq!(
        (line["ip"].as_str(), line["text"].as_str()),
        (Some("127.0.0.11"), Some("Checking version: running 4.29.0F"))
    );
    let (_, _, stored) = request(http, None, "GET", "/api/ztp/device/127.0.0.11/log", "");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored.as_array().unwrap().last().unwrap()["text"], line["text"]);

    // A TFTP download that stalls after its first block shows as progress.
    let udp = UdpSocket::bind("127.0.0.11:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"\x00\x01images/lab.bin\x00octet\x00", rt.addr("tftp")).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], b"\x00\x03\x00\x01", "first DATA block ({n} bytes)");
    let p = ev.until("progress", |e, v| e == "progress" && v.as_array().is_some_and(|a| !a.is_empty()));
    let t = &p[0];
    assert_eq!(
        (t["ip"].as_str(), t["proto"].as_str(), t["path"].as_str()),
        (Some("127.0.0.11"), Some("tftp"), Some("images/lab.bin"))
    );
    assert_eq!(t["total"], IMAGE_LEN as u64);
    let bytes = t["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < IMAGE_LEN as u64, "{t}");
    // A second client's snapshot has the device and the transfer too.
    let mut late = Events::open(http);
    let (name, snap) = late.next();
    assert_eq!(name, "snapshot");
    assert_eq!(snap["devices"][0]["ip_addr"], "127.0.0.11");
    assert_eq!(snap["transfers"][0]["proto"], "tftp");
    drop(late);

    // Delete: refused without the token (no event), then done with it.
    let (code, _, _) = request(http, None, "DELETE", "/api/ztp/device/127.0.0.11", "");
    assert_eq!(code, 403);
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (code, _, b) = request_with(http, None, "DELETE", "/api/ztp/device/127.0.0.11", "", &[&auth]);
    assert_eq!(code, 200, "{b}");
    let v = ev.until("deleted", |e, _| e == "deleted");
    assert_eq!(v["ip"], "127.0.0.11");
    assert_eq!(request(http, None, "GET", "/api/ztp/device/status/127.0.0.11", "").0, 404);
}
