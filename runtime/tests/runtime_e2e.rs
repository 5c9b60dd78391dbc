//! The `ztp-runtime` binary end to end on loopback: status reports and the API, spoofed
//! reports refused, admin token, reports surviving kill -9, hot reload of a rebuilt
//! artifact directory, and a broken directory refused while the old one keeps serving.
#![allow(clippy::unwrap_used)] // test helpers: a failed step should stop the test loudly

#[path = "lab_support.rs"]
mod lab;
use lab::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Runtime {
    child: Child,
    http: SocketAddr,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(artifacts: &Path, state: &Path, token: Option<&Path>) -> Runtime {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"));
    cmd.args(["--artifacts", artifacts.to_str().unwrap()]);
    if let Some(t) = token {
        cmd.arg("--admin-token-file").arg(t);
    }
    spawn(cmd, state)
}

/// Run the binary with loopback port-0 listeners and JSON logs; learn the HTTP address
/// from its "listening" line and wait until /healthz answers.
fn spawn(mut cmd: Command, state: &Path) -> Runtime {
    cmd.args(["--state", state.to_str().unwrap()])
        .args([
            "--no-dhcp",
            "--http-listen",
            "127.0.0.1:0",
            "--tftp-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["service"] == "http" && v["fields"]["message"] == "listening" {
                let _ = tx.send(v["fields"]["address"].as_str().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("runtime did not log its http address");
    let rt = Runtime { child, http: addr.parse().unwrap() };
    wait_for(|| get(rt.http, "/healthz").0 == 200, "healthz 200");
    rt
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A minimal HTTP/1.1 exchange: (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, &[], "")
}

fn generation(addr: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/api/ztp/services").1).unwrap()
}

#[test]
fn reports_api_spoofing_admin_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, |t| t);
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret-admin\n").unwrap();
    let rt = start(&out, &state, Some(&token));

    let report =
        r#"{"ip":"127.0.0.1","system_id":"SN1","platform":"eos","task":"ZTP Done","log":"script finished"}"#;
    let (code, body) = request(rt.http, "POST", "/api/ztp/device/log", &[], report);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"status\":\"in_progress\""), "{body}");
    // Another device's address from this source: refused, nothing recorded.
    let spoof = report.replace("127.0.0.1", "10.99.0.21");
    assert_eq!(request(rt.http, "POST", "/api/ztp/device/log", &[], &spoof).0, 403);
    assert_eq!(get(rt.http, "/api/ztp/device/status/10.99.0.21").0, 404);
    // Bad bodies: clear 4xx, never a 5xx.
    for bad in ["{", r#"{"ip":"nope"}"#, r#"{"ip":"127.0.0.1","extra":1}"#] {
        let code = request(rt.http, "POST", "/api/ztp/device/log", &[], bad).0;
        assert_eq!(code, 400, "{bad}");
    }
    assert_eq!(request(rt.http, "POST", "/api/ztp/device/log", &[], &"x".repeat(70_000)).0, 413);
    // NX-OS POAP reports with GET and a query string.
    let (code, body) = get(rt.http, "/api/ztp/device/log?ip=127.0.0.1&task=Checking+version&platform=nxos");
    assert_eq!(code, 200, "{body}");
    assert_eq!(get(rt.http, "/api/ztp/device/log?ip=10.99.0.21&task=x").0, 403);
    let ready = report.replace("ZTP Done", "Device Ready");
    assert_eq!(request(rt.http, "POST", "/api/ztp/device/log", &[], &ready).0, 200);
    let (code, row) = get(rt.http, "/api/ztp/device/status/127.0.0.1");
    assert_eq!(code, 200);
    assert!(row.contains("\"status\":\"completed\"") && row.contains("\"system_id\":\"SN1\""), "{row}");
    let (_, log) = get(rt.http, "/api/ztp/device/127.0.0.1/log");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&log).unwrap().as_array().unwrap().len(), 3);
    // A fetch lands in the device's log too (written asynchronously).
    assert_eq!(get(rt.http, "/ztp-eos.sh").0, 200);
    wait_for(
        || get(rt.http, "/api/ztp/device/127.0.0.1/log").1.contains("GET /ztp-eos.sh: 200"),
        "http event",
    );

    // kill -9, restart: the acknowledged report is still there.
    let mut rt = rt;
    rt.child.kill().unwrap();
    rt.child.wait().unwrap();
    let rt = start(&out, &state, Some(&token));
    let (code, row) = get(rt.http, "/api/ztp/device/status/127.0.0.1");
    assert_eq!(code, 200);
    assert!(row.contains("completed"), "{row}");

    // Delete needs the admin token.
    assert_eq!(request(rt.http, "DELETE", "/api/ztp/device/127.0.0.1", &[], "").0, 403);
    assert_eq!(request(rt.http, "DELETE", "/api/ztp/device/127.0.0.1", &[("AuthToken", "wrong")], "").0, 403);
    let auth = [("Authorization", "Bearer s3cret-admin")];
    assert_eq!(request(rt.http, "DELETE", "/api/ztp/device/127.0.0.1", &auth, "").0, 200);
    assert_eq!(get(rt.http, "/api/ztp/device/status/127.0.0.1").0, 404);
}

#[test]
fn hot_reload_swaps_good_trees_and_refuses_broken_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, |t| t);
    let rt = start(&out, &state, None);
    let first = generation(rt.http)["generation"].as_str().unwrap().to_string();
    // Files written beside the artifact directory (a log, say) are not changes to it:
    // no reload attempt at all, so nothing can loop on its own log output.
    for i in 0..5 {
        std::fs::write(tmp.path().join("runtime.log"), format!("line {i}\n")).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    std::thread::sleep(Duration::from_millis(200));
    let metrics = get(rt.http, "/metrics").1;
    let attempts: Vec<&str> = metrics.lines().filter(|l| l.starts_with("ztp_reloads_total{")).collect();
    assert!(!attempts.is_empty(), "no reload metrics:\n{metrics}");
    for l in &attempts {
        assert!(l.ends_with(" 0"), "a sibling file caused a reload attempt: {l}");
    }
    let (code, before) = get(rt.http, "/ztp.json");
    assert_eq!(code, 200);

    // A rebuild (atomic directory swap by ztpc) is served within a second.
    build_lab(&out, |t| t.replace("    platform \"eos\"\n", "    platform \"eos\" { versions \"9.9.9\" }\n"));
    let t = Instant::now();
    wait_for(|| generation(rt.http)["generation"].as_str() != Some(&first), "new generation");
    assert!(t.elapsed() < Duration::from_secs(1), "reload took {:?}", t.elapsed());
    let second = generation(rt.http)["generation"].as_str().unwrap().to_string();
    let (_, after) = get(rt.http, "/ztp.json");
    assert_ne!(before, after);

    // A file edited behind the manifest's back: refused, the old generation keeps serving.
    std::fs::write(out.join("tftp/ztp.json"), "{}").unwrap();
    wait_for(|| !generation(rt.http)["last_refused_reload"].is_null(), "refusal recorded");
    let g = generation(rt.http);
    assert_eq!(g["generation"].as_str(), Some(second.as_str()));
    assert!(g["last_refused_reload"]["reason"].as_str().unwrap().contains("ztp.json"), "{g}");
    assert_eq!(get(rt.http, "/ztp.json").1, after, "old bytes must keep serving");
}

#[test]
fn sigterm_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, |t| t);
    let mut rt = start(&out, &state, None);
    let report = r#"{"ip":"127.0.0.1","task":"ZTP Done"}"#;
    assert_eq!(request(rt.http, "POST", "/api/ztp/device/log", &[], report).0, 200);
    let pid = rt.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = rt.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "runtime did not stop within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // The status database is intact and holds the report.
    let store = ztp_runtime::status::Store::open(&state).unwrap();
    assert_eq!(store.device("127.0.0.1").unwrap().unwrap().task, "ZTP Done");
}

/// `ztp-runtime FABRIC`: an edit that does not compile is refused with the compiler's
/// diagnostics, the old generation keeps serving, and a good edit is picked up.
#[test]
fn fabric_mode_refuses_a_broken_edit_and_takes_a_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = root().join("examples/lab");
    let dir = tmp.path().join("fabric");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    for f in ["secrets/root-password", "secrets/device-password"] {
        std::fs::copy(lab.join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(lab.join("fabric.kdl")).unwrap();
    let fabric = dir.join("fabric.kdl");
    std::fs::write(&fabric, &text).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"));
    cmd.arg(&fabric);
    let rt = spawn(cmd, &tmp.path().join("state"));
    let first = generation(rt.http)["generation"].as_str().unwrap().to_string();
    let (_, before) = get(rt.http, "/ztp.json");

    std::fs::write(&fabric, text.replace("    dhcp {", "    dhcpp {")).unwrap();
    wait_for(|| !generation(rt.http)["last_refused_reload"].is_null(), "refusal");
    let g = generation(rt.http);
    assert_eq!(g["generation"].as_str(), Some(first.as_str()));
    let reason = g["last_refused_reload"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("ztp::schema::unknown-node") && reason.contains("did you mean `dhcp`"),
        "{reason}"
    );
    assert_eq!(get(rt.http, "/ztp.json").1, before);

    std::fs::write(
        &fabric,
        text.replace("    platform \"eos\"\n", "    platform \"eos\" { versions \"9.9.9\" }\n"),
    )
    .unwrap();
    wait_for(|| generation(rt.http)["generation"].as_str() != Some(first.as_str()), "new generation");
    assert!(get(rt.http, "/ztp.json").1.contains("9.9.9"));
}

/// SIGHUP (systemd's `ExecReload`) runs a reload attempt without any file changing: the
/// unchanged tree is counted as such and the generation stays the same.
#[test]
fn sighup_reloads_now() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, |t| t);
    let rt = start(&out, &state, None);
    let first = generation(rt.http)["generation"].as_str().unwrap().to_string();
    let unchanged = || {
        let m = get(rt.http, "/metrics").1;
        let line =
            m.lines().find(|l| l.starts_with("ztp_reloads_total{result=\"unchanged\"}")).map(str::to_string);
        line.unwrap_or_else(|| panic!("no unchanged-reload counter:\n{m}"))
    };
    assert!(unchanged().ends_with(" 0"), "{}", unchanged());
    let pid = rt.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for(|| unchanged().ends_with(" 1"), "one reload attempt after SIGHUP");
    assert_eq!(generation(rt.http)["generation"].as_str(), Some(first.as_str()));
    assert_eq!(get(rt.http, "/healthz").0, 200, "still serving after SIGHUP");
}
