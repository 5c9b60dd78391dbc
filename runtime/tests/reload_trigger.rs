//! When the runtime reloads an artifact directory: at once when `ztpc build` swaps a
//! new tree in by rename (without waiting for the debounce, and never half a tree: no
//! refusal and the new bytes over many swaps), but only once changes have settled when
//! a file is edited in place, so that an edit is not loaded while it is being written.
#![allow(clippy::unwrap_used)] // test helpers: a failed step should stop the test loudly

#[path = "listening_support.rs"]
mod listening;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `ztpc build` of examples/lab into `out` (an atomic swap), with `versions` for eos;
/// returns the tree's ztp.json.
fn build_lab(out: &Path, versions: &str) -> Vec<u8> {
    let dir = root().join("examples/lab");
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    assert!(text.contains("    platform \"eos\"\n"));
    let text = text
        .replace("    platform \"eos\"\n", &format!("    platform \"eos\" {{ versions \"{versions}\" }}\n"));
    let host = ztpc::Host { base_dir: dir.clone(), env: &|_| None };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: dir.display().to_string() };
    let o = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!o.diagnostics.has_errors());
    ztpc::emit::emit(&o.artifacts.unwrap(), out).unwrap();
    std::fs::read(out.join("tftp/ztp.json")).unwrap()
}

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

fn start(out: &Path, state: &Path, debounce_ms: u64) -> Runtime {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .args(["--artifacts", out.to_str().unwrap(), "--state", state.to_str().unwrap()])
        .args([
            "--no-dhcp",
            "--http-listen",
            "127.0.0.1:0",
            "--tftp-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--reload-debounce-ms", &debounce_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = listening::listening(&mut child, 2);
    Runtime { child, http: addrs["http"] }
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return (0, Vec::new()) };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Vec::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, Vec::new()) };
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out[end + 4..].to_vec())
}

fn services(addr: SocketAddr) -> serde_json::Value {
    serde_json::from_slice(&get(addr, "/api/ztp/services").1).unwrap()
}

fn generation(addr: SocketAddr) -> String {
    services(addr)["generation"].as_str().unwrap().to_string()
}

/// Poll until `f` holds (every 10 ms, at most `limit`).
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// With a debounce far longer than a reload, each of ten rebuilds is served well
/// before the debounce could have run out, none is refused (the rename comes after the
/// whole tree is written, so acting on it never loads half a tree), and every time the
/// new generation serves exactly the new tree's bytes.
#[test]
fn a_swapped_tree_is_served_at_once_and_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    let mut body = build_lab(&out, "1.0");
    let rt = start(&out, &state, 5_000);
    assert_eq!(get(rt.http, "/ztp.json"), (200, body.clone()));
    for i in 0..10 {
        let before = generation(rt.http);
        body = build_lab(&out, &format!("{}.0", i % 2 + 2));
        until(Duration::from_secs(4), "the rebuilt tree served (the debounce is 5 s)", || {
            generation(rt.http) != before
        });
        assert_eq!(get(rt.http, "/ztp.json"), (200, body.clone()), "rebuild {i}: the new tree's bytes");
        let s = services(rt.http);
        assert!(s["last_refused_reload"].is_null(), "rebuild {i}: a reload was refused: {s}");
    }
}

/// An edit made in place inside the tree (here one that breaks a checksum, so that its
/// load is visible as a refusal) is loaded only once no change has been seen for the
/// debounce time, and then is refused while the old generation keeps serving.
#[test]
fn an_edit_in_place_is_loaded_once_it_settles() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    let body = build_lab(&out, "1.0");
    let rt = start(&out, &state, 1_500);
    let first = generation(rt.http);
    // Keep writing for 1.2 s, every 300 ms: never settled for 1.5 s.
    let t = Instant::now();
    for i in 0..5 {
        std::fs::write(out.join("tftp/ztp.json"), format!("{{\"edit\": {i}}}")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let last_write = t.elapsed() - Duration::from_millis(300);
    let s = services(rt.http);
    assert!(s["last_refused_reload"].is_null(), "loaded before the edits settled: {s}");
    until(Duration::from_secs(10), "the settled edit to be refused", || {
        !services(rt.http)["last_refused_reload"].is_null()
    });
    assert!(
        t.elapsed() >= last_write + Duration::from_millis(1_500),
        "refused {:?} after the first write",
        t.elapsed()
    );
    let s = services(rt.http);
    assert!(s["last_refused_reload"]["reason"].as_str().unwrap().contains("ztp.json"), "{s}");
    assert_eq!(s["generation"].as_str(), Some(first.as_str()));
    assert_eq!(get(rt.http, "/ztp.json"), (200, body), "the old bytes keep serving");
}

/// An edit made to a freshly swapped tree straight away, before the runtime can have
/// watched the new directory, is still noticed (here: refused, since it breaks a
/// checksum), whether the swap's load saw it or a later look did.
#[test]
fn an_edit_right_after_a_swap_is_not_missed() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, state) = (tmp.path().join("out"), tmp.path().join("state"));
    build_lab(&out, "1.0");
    let rt = start(&out, &state, 200);
    let refused_at = || services(rt.http)["last_refused_reload"]["at"].as_str().map(str::to_string);
    for i in 0..3 {
        let before = refused_at();
        build_lab(&out, &format!("{}.5", i + 2));
        std::fs::write(out.join("tftp/ztp.json"), format!("{{\"edit\": {i}}}")).unwrap();
        until(Duration::from_secs(10), "the edit to be refused", || refused_at() != before);
        let s = services(rt.http);
        assert!(s["last_refused_reload"]["reason"].as_str().unwrap().contains("ztp.json"), "{s}");
        // A clean rebuild (a tree not served before) is served again.
        let served = generation(rt.http);
        build_lab(&out, &format!("{}.9", i + 2));
        until(Duration::from_secs(10), "a clean rebuild served", || generation(rt.http) != served);
    }
}

fn post_report(addr: SocketAddr, n: usize) -> u16 {
    let body = format!(r#"{{"ip":"127.0.0.1","task":"init","log":"report {n}"}}"#);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "POST /api/ztp/device/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// `ztp_reloads_total{result="RESULT"}` from /metrics.
fn reloads(addr: SocketAddr, result: &str) -> u64 {
    let text = String::from_utf8(get(addr, "/metrics").1).unwrap();
    let key = format!("ztp_reloads_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(key.as_str())).and_then(|v| v.trim().parse().ok()).unwrap()
}

/// Serving a fabric file with the state directory inside the fabric's directory (the
/// default `./ztp-state`, run from there): the status the runtime writes itself is no
/// change to the fabric, so reports recompile nothing, while an edit of the fabric is
/// still loaded.
#[test]
fn the_runtimes_own_state_writes_trigger_no_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fabric");
    let cp = Command::new("cp").arg("-r").arg(root().join("examples/lab")).arg(&dir).status().unwrap();
    assert!(cp.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ztp-runtime"))
        .args(["fabric.kdl", "--no-dhcp", "--http-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--reload-debounce-ms", "50"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = listening::listening(&mut child, 2);
    let rt = Runtime { child, http: addrs["http"] };
    assert!(dir.join("ztp-state").is_dir(), "the default state directory is inside the watched tree");
    let first = generation(rt.http);
    for n in 0..10 {
        assert_eq!(post_report(rt.http, n), 200, "report {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Well past the debounce after the last report.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reloads(rt.http, "unchanged"), 0, "status writes recompiled the fabric");
    assert_eq!(reloads(rt.http, "accepted"), 0);
    // The fabric itself is still watched.
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    let edited = text.replace("    platform \"eos\"\n", "    platform \"eos\" { versions \"9.9\" }\n");
    assert_ne!(text, edited);
    std::fs::write(dir.join("fabric.kdl"), edited).unwrap();
    until(Duration::from_secs(10), "the edited fabric served", || generation(rt.http) != first);
    assert_eq!(reloads(rt.http, "accepted"), 1);
}
