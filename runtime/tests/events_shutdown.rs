//! Device events are written in batches off the request path (runtime/src/events.rs);
//! a clean shutdown (SIGTERM) must still record every one: the `ztp-runtime` binary
//! serving examples/lab on loopback takes a burst of HTTP fetches, is stopped at once,
//! and the status store must then hold one event per fetch.
#![allow(clippy::unwrap_used)] // test helpers: a failed step should stop the test loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[path = "lab_support.rs"]
mod lab;
#[path = "listening_support.rs"]
mod listening;
use lab::*;

/// `n` GETs of `path` on one keep-alive connection; returns how many got a 200.
fn fetch_many(addr: SocketAddr, path: &str, n: usize) -> usize {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut r = BufReader::new(s);
    let mut ok = 0;
    for _ in 0..n {
        w.write_all(req.as_bytes()).unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        ok += usize::from(status.split_whitespace().nth(1) == Some("200"));
    }
    ok
}

#[test]
fn sigterm_records_every_queued_event() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, on_loopback);
    let (mut child, addrs) = listening::serve_artifacts(&out, &state);
    let n = 3000;
    let ok = fetch_many(addrs["http"], "/ztp.json", n);
    // At once: the writer is still lingering over (or writing) the last batch.
    listening::stop_cleanly(&mut child);
    assert_eq!(ok, n, "every fetch was served");
    let store = ztp_runtime::status::Store::open(&state).unwrap();
    let log = store.log("127.0.0.1").unwrap();
    let fetches = log.iter().filter(|e| e.kind == "http" && e.text.starts_with("GET /ztp.json: 200")).count();
    assert_eq!(fetches, n, "one event per fetch after a clean shutdown");
}
