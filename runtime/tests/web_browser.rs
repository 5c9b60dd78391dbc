//! The web page in a real browser: Debian's headless Chromium, driven by playwright-core
//! (runtime/tests/browser/drive.mjs), against the `ztp-runtime` binary on loopback
//! while devices lease and report. The script asserts what a person sees (a lease
//! appears, a report turns a device in progress then completed, a log line arrives in
//! the open log view, a download shows its progress, a refused reload shows its
//! reason, delete asks for the admin token and removes the row) and saves screenshots
//! at 1280 px and phone width, light and dark, under target/tmp/web-browser/.
//!
//! Needs node, /usr/bin/chromium (or $CHROMIUM) and `npm ci` in runtime/tests/browser;
//! without them it prints SKIPPED, or fails when ZTP_REQUIRE_ORACLES=1.
#![allow(clippy::unwrap_used)] // test code: a failed step should stop the test loudly

#[path = "web_support.rs"]
mod web_support;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use web_support::{TOKEN, build_lab, lease, request, start, wait_for};

fn skip(why: &str) {
    if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("{why} and ZTP_REQUIRE_ORACLES=1");
    }
    eprintln!("SKIPPED web_browser: {why}");
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[test]
fn web_page_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return skip(&format!("no Chromium at {chromium} (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return skip("node is not on PATH (apt-get install nodejs npm)");
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").exists() {
        return skip("playwright-core is not installed (npm ci --prefix runtime/tests/browser)");
    }

    let tmp = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = build_lab(tmp.path());
    let rt = start(&out, state.path());
    let http = rt.addr("http");
    lease(&rt, [0x52, 0x54, 0, 0x99, 0, 0x11], Ipv4Addr::new(127, 0, 0, 11));

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-browser");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = Command::new("node")
        .arg(browser_dir().join("drive.mjs"))
        .current_dir(browser_dir())
        .env("ZTP_BASE", format!("http://{http}"))
        .env("ZTP_TOKEN", TOKEN)
        .env("ZTP_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let stdout = node.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser script stopped or timed out after: {last}");
        };
        println!("browser: {line}");
        match line.as_str() {
            "NEED dhcp spine2" => lease(&rt, [0x52, 0x54, 0, 0x99, 0, 0x12], Ipv4Addr::new(127, 0, 0, 12)),
            "NEED refuse reload" => {
                // A served file edited behind the manifest's back: the reload is refused.
                std::fs::write(out.join("tftp/ztp.json"), "{}").unwrap();
                wait_for(
                    || {
                        let (_, _, b) = request(http, None, "GET", "/api/ztp/services", "");
                        !b.contains("\"last_refused_reload\":null")
                    },
                    "a refused reload",
                );
            }
            l if l.starts_with("NEED ") => panic!("the browser script asked for something unknown: {l}"),
            l if l.starts_with("PASS ") || l.starts_with("FAIL ") => {
                last = line;
                break;
            }
            _ => {
                last = line;
                continue;
            }
        }
        writeln!(stdin, "done").unwrap();
    }
    let status = node.wait().unwrap();
    assert!(status.success() && last.starts_with("PASS "), "browser script: {last}");
    for shot in [
        "devices-1280-light",
        "devices-1280-dark",
        "devices-390-light",
        "devices-390-dark",
        "log-1280-light",
        "progress-1280-light",
    ] {
        let p = shots.join(format!("{shot}.png"));
        let bytes = std::fs::read(&p).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "screenshot {}", p.display());
    }
    println!("screenshots in {}", shots.display());
}
