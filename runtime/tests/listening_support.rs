//! The runtime's listener addresses, read from its JSON log (included with `#[path]`; as
//! its own test target it holds no tests). With `--log-format json` every listener logs
//! `listening` with its service and bound address, so tests can bind port 0.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

/// Take `child`'s stderr (piped) and wait for `services` listeners to log their address.
/// A thread keeps reading stderr afterwards, so the pipe never fills and blocks the child.
pub fn listening(child: &mut Child, services: usize) -> HashMap<String, SocketAddr> {
    let stderr = child.stderr.take().expect("the runtime's stderr must be piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "listening" {
                let service = v["fields"]["service"].as_str().unwrap_or_default().to_string();
                let addr = v["fields"]["address"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((service, addr));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut addrs = HashMap::new();
    while addrs.len() < services {
        let left = deadline.saturating_duration_since(Instant::now());
        let (s, a) = rx.recv_timeout(left).expect("the runtime did not log its listeners' addresses");
        addrs.insert(s, a.parse().unwrap());
    }
    addrs
}

/// `ztp-runtime --artifacts out --state state --no-dhcp` with HTTP and TFTP on
/// 127.0.0.1 port 0 and JSON logs; the child and its two listeners' addresses.
pub fn serve_artifacts(
    out: &std::path::Path,
    state: &std::path::Path,
) -> (Child, HashMap<String, SocketAddr>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .args(["--artifacts", out.to_str().unwrap(), "--state", state.to_str().unwrap(), "--no-dhcp"])
        .args(["--http-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0", "--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addrs = listening(&mut child, 2);
    (child, addrs)
}

/// SIGTERM `child` and wait (at most 15 s) for it to exit 0: a clean shutdown.
pub fn stop_cleanly(child: &mut Child) {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    let code = loop {
        if let Some(c) = child.try_wait().unwrap() {
            break c;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "the runtime did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "clean shutdown exits 0, got {code}");
}
