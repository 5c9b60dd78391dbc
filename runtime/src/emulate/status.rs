//! The runtime's word on the device: `GET /api/ztp/device/status/{ip}` until it says
//! `completed` or `failed`, and the device's log for the journey's last lines.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One GET over a fresh connection: (status code, body).
pub fn get(api: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&api, Duration::from_secs(3)).map_err(|e| format!("{api}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nUser-Agent: ztp-emulate\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("bad status line")?;
    Ok((code, body.to_string()))
}

/// Poll until completed or failed; None when `within` passes first. `seen` gets each
/// new status/task pair.
pub fn wait(api: SocketAddr, ip: Ipv4Addr, within: Duration, mut seen: impl FnMut(&Value)) -> Option<Value> {
    let until = Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Ok((200, body)) = get(api, &format!("/api/ztp/device/status/{ip}"))
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            let now = format!("{} {}", v["status"], v["task"]);
            if now != last {
                seen(&v);
                last = now;
            }
            if v["status"] == "completed" || v["status"] == "failed" {
                return Some(v);
            }
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The device's log as "task: text" lines (empty when unavailable).
pub fn log(api: SocketAddr, ip: Ipv4Addr) -> Vec<String> {
    let Ok((200, body)) = get(api, &format!("/api/ztp/device/{ip}/log")) else { return Vec::new() };
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!("{}: {}", e["kind"].as_str().unwrap_or(""), e["text"].as_str().unwrap_or(""))
                })
                .collect()
        })
        .unwrap_or_default()
}
