//! The syslog receiver end to end: `ztp-runtime --syslog-listen 127.0.0.1:0`, messages
//! sent over loopback UDP from a leased device's own address (RFC 5424 and RFC 3164),
//! from an address that is no device, and malformed; each lands in the right device
//! log (or nowhere) and is counted in `/metrics`.
#![allow(clippy::unwrap_used)] // test code: a failed step should stop the test loudly

#[path = "web_support.rs"]
mod web_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use web_support::{build_lab, lease, request, start_with, wait_for};

fn metric(http: std::net::SocketAddr, series: &str) -> f64 {
    let (_, _, body) = request(http, None, "GET", "/metrics", "");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[test]
fn syslog_files_messages_by_source_address() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = build_lab(tmp.path());
    let rt = start_with(&out, state.path(), &["--syslog-listen", "127.0.0.1:0"], 4);
    let (http, syslog) = (rt.addr("http"), rt.addr("syslog"));
    let (_, _, services) = request(http, None, "GET", "/api/ztp/services", "");
    assert!(services.contains("\"name\":\"syslog\""), "{services}");
    lease(&rt, [0x52, 0x54, 0, 0x99, 0, 0x11], Ipv4Addr::new(127, 0, 0, 11));

    let spine1 = UdpSocket::bind("127.0.0.11:0").unwrap();
    spine1.send_to(b"<14>1 2026-11-25T10:00:00.000Z spine1 Ztp 4242 - - image copied\n", syslog).unwrap();
    spine1
        .send_to(b"<28>Nov 25 10:00:01 spine1 ConfigAgent[77]: %SYS-4-CONFIG: startup-config saved", syslog)
        .unwrap();
    spine1.send_to(b"<999>broken", syslog).unwrap();
    let stranger = UdpSocket::bind("127.0.0.77:0").unwrap();
    stranger.send_to(b"<14>1 - - intruder - - - not a device", syslog).unwrap();

    let filed = "ztp_syslog_messages_total{result=\"filed\"}";
    wait_for(|| metric(http, filed) == 2.0, "two filed messages");
    assert_eq!(metric(http, "ztp_syslog_messages_total{result=\"malformed\"}"), 1.0);
    wait_for(
        || metric(http, "ztp_syslog_messages_total{result=\"unknown_source\"}") == 1.0,
        "the stranger's message counted",
    );

    let log = |ip: &str| -> Vec<serde_json::Value> {
        let (code, _, body) = request(http, None, "GET", &format!("/api/ztp/device/{ip}/log"), "");
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    };
    let syslog_lines = || -> Vec<String> {
        log("127.0.0.11")
            .iter()
            .filter(|e| e["kind"] == "syslog")
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(|| syslog_lines().len() == 2, "two syslog lines in spine1's log");
    assert_eq!(
        syslog_lines(),
        ["info Ztp[4242]: image copied", "warning ConfigAgent[77]: %SYS-4-CONFIG: startup-config saved"]
    );
    std::thread::sleep(Duration::from_millis(200)); // anything filed late would show below
    assert!(log("127.0.0.77").is_empty(), "nothing is filed for an address that is no device");
    assert_eq!(request(http, None, "GET", "/api/ztp/device/status/127.0.0.77", "").0, 404);
}
