//! The HTTP router around file serving, end to end through the `ztp-runtime` binary
//! (examples/lab, its device addresses moved to 127.0.0.x): one keep-alive connection
//! gets 200, 304, HEAD, 404 and 400 answers; a device script is refused (403) to
//! another address and served to its device's own; and after a clean stop the device
//! log holds exactly one event per GET, with the status and the byte count the client
//! saw (HEAD and refused scripts are not fetches), and the refusal in the owner's log.
#![allow(clippy::unwrap_used)] // test helpers: a failed step should stop the test loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

#[path = "lab_support.rs"]
mod lab;
#[path = "listening_support.rs"]
mod listening;
use lab::*;

/// One answer: status, lower-cased headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A keep-alive client connection, optionally from a given local address.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(to: SocketAddr, from: Option<IpAddr>) -> Client {
        let s = match from {
            None => TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap(),
            Some(ip) => {
                let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                sock.bind(&SocketAddr::new(ip, 0).into()).unwrap();
                sock.connect_timeout(&to.into(), Duration::from_secs(2)).unwrap();
                sock.into()
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { w: s.try_clone().unwrap(), r: BufReader::new(s) }
    }

    fn ask(&mut self, method: &str, path: &str, extra: &str) -> Reply {
        write!(self.w, "{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let reply = Reply { status, headers, body: Vec::new() };
        let len = if method == "HEAD" {
            0
        } else {
            reply.header("content-length").map_or(0, |v| v.parse().unwrap())
        };
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).unwrap();
        Reply { body, ..reply }
    }
}

#[test]
fn file_requests_are_answered_checked_and_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, on_loopback);
    let (mut child, addrs) = listening::serve_artifacts(&out, &state);
    let http = addrs["http"];
    let ztp_json = std::fs::read(out.join("tftp/ztp.json")).unwrap();
    let leaf1 = std::fs::read(out.join("tftp/devices/leaf1.sh")).unwrap();

    let mut c = Client::connect(http, None);
    let r = c.ask("GET", "/ztp.json", "");
    assert!(r.status == 200 && r.body == ztp_json, "GET /ztp.json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some(ztp_json.len().to_string().as_str()));
    let etag = r.header("etag").unwrap().to_string();
    let r = c.ask("GET", "/ztp.json", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, Some(etag.as_str())));
    let r = c.ask("HEAD", "/ztp.json", "");
    assert_eq!((r.status, r.header("content-length")), (200, Some(ztp_json.len().to_string().as_str())));
    let r = c.ask("GET", "/ztp.json?x=1", "Range: bytes=0-9\r\n");
    assert!(r.status == 206 && r.body == ztp_json[..10], "a query is ignored, the range honoured");
    assert_eq!(c.ask("GET", "/nope", "").status, 404);
    assert_eq!(c.ask("GET", "/%2e%2e/etc/passwd", "").status, 400);
    // leaf1's script (its passwords) is for 127.0.0.21 only.
    let r = c.ask("GET", "/devices/leaf1.sh", "");
    assert!(r.status == 403 && !String::from_utf8_lossy(&r.body).contains("password"), "{}", r.status);
    let mut own = Client::connect(http, Some("127.0.0.21".parse().unwrap()));
    let r = own.ask("GET", "/devices/leaf1.sh", "");
    assert!(r.status == 200 && r.body == leaf1, "the device's own script, from its own address");
    drop((c, own));

    listening::stop_cleanly(&mut child);

    let store = ztp_runtime::status::Store::open(&state).unwrap();
    let texts = |ip: &str, kind: &str| -> Vec<String> {
        store.log(ip).unwrap().into_iter().filter(|e| e.kind == kind).map(|e| e.text).collect()
    };
    let n = ztp_json.len();
    assert_eq!(
        texts("127.0.0.1", "http"),
        [
            format!("GET /ztp.json: 200 ({n} bytes)"),
            "GET /ztp.json: 304 (0 bytes)".to_string(),
            "GET /ztp.json: 206 (10 bytes)".to_string(),
            "GET /nope: 404 (10 bytes)".to_string(),
            "GET /%2e%2e/etc/passwd: 400 (9 bytes)".to_string(),
        ]
    );
    assert_eq!(texts("127.0.0.21", "http"), [format!("GET /devices/leaf1.sh: 200 ({} bytes)", leaf1.len())]);
    let security = texts("127.0.0.21", "security");
    assert!(
        security.len() == 1 && security[0].contains("devices/leaf1.sh refused to 127.0.0.1"),
        "the refusal in the owner's log: {security:?}"
    );
}
