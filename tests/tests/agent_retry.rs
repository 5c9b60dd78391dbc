//! Every script's agent request is tried again when the server does not answer it
//! (a boot storm): the script's own `agent_request`, `post_json` and `log`, cut out of
//! each generated shell script, run by the script's shell with the real curl against a
//! server that answers 503 first and 202 after.
//! The two Python scripts (NX-OS, Junos EVO) run their own `create_agent` the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ztp_tests::*;

/// `name() {` up to the first line that is `}`.
fn function(script: &str, name: &str) -> String {
    let start = script.find(&format!("\n{name}() {{\n")).unwrap_or_else(|| panic!("no {name}()"));
    let body = &script[start + 1..];
    let end = body.find("\n}\n").expect("function end");
    body[..end + 3].to_string()
}

/// An HTTP server on loopback answering 503 to the first `fail_first` requests, 202
/// with a small JSON body to the rest; counts the requests.
fn server(fail_first: usize) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = l.local_addr().expect("local address").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let Ok(reader) = c.try_clone() else { continue };
            let mut r = BufReader::new(reader);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let n = count.fetch_add(1, Ordering::SeqCst);
            let reply = if n < fail_first {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            } else {
                let b = r#"{"id":"job-1","state":"queued"}"#;
                format!(
                    "HTTP/1.1 202 Accepted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                )
            };
            let _ = c.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn shell_scripts_ask_for_the_agent_again_when_the_server_fails() {
    if oracle("curl").is_none() {
        return;
    }
    let scripts = [
        ("ztp-junos.sh", "sh"),
        ("ztp-eos.sh", "bash"),
        ("ztp-sonic.sh", "bash"),
        ("ztp-cumulus.sh", "bash"),
    ];
    for (file, shell) in scripts {
        let text = std::fs::read_to_string(root().join("golden/dc1/tftp").join(file)).unwrap();
        assert!(text.contains("AGENT_TRIES=3\n"), "{file}");
        let funcs: String = ["log", "post_json", "agent_request"]
            .iter()
            .map(|f| function(&text, f))
            .collect::<Vec<_>>()
            .join("\n");
        for (tries, fail_first, ok) in [(3, 2, true), (3, 3, false), (1, 1, false)] {
            let (port, seen) = server(fail_first);
            let work = tempfile::tempdir().unwrap();
            let harness = format!(
                "{net}WORK={work:?}\nAGENT_URL=http://127.0.0.1:{port}/api/ztp/create_agent\n\
                 AGENT_TRIES={tries}\nAGENT_PAUSE=0\n{funcs}\nout=$(agent_request '{{\"a\":1}}') || exit 3\n\
                 printf '%s' \"$out\"\n",
                work = work.path(),
                // Cumulus runs curl through "${NET[@]}" (`ip vrf exec mgmt` when there is one).
                net = if shell == "bash" { "NET=()\n" } else { "" },
            );
            let out = Command::new(shell).args(["-c", &harness]).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let requests = (fail_first + 1).min(tries);
            assert_eq!(seen.load(Ordering::SeqCst), requests, "{file}: {stderr}");
            if ok {
                assert!(out.status.success(), "{file}: {stderr}");
                assert_eq!(stdout, r#"{"id":"job-1","state":"queued"}"#, "{file}");
                assert!(stderr.contains("failed (try 2 of 3)"), "{file}: {stderr}");
            } else {
                assert_eq!(out.status.code(), Some(3), "{file}: gives up after {tries} tries: {stderr}");
            }
        }
    }
}

/// Runs a Python script's own `create_agent` (the script imported as a module, so its
/// `main` does not run) with the URL, tries and pause set, `log` to stderr, and `fail`
/// exiting 3 (the real one also reports, which would be a second request). NX-OS fetches
/// through POAP's `cli("copy URL bootflash:NAME vrf V")`: a stand-in `cli` module does
/// that GET with urllib, and the script's `/bootflash/` paths point into a temporary
/// directory instead.
const PY_HARNESS: &str = r#"
import os, sys, types, urllib.request
script, tmp, url, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def cli(command):
    for c in command.split(" ; "):
        words = c.split()
        if words == ["terminal", "dont-ask"]:
            continue
        assert words[0] == "copy", c
        body = urllib.request.urlopen(words[1], timeout=10).read()
        with open(os.path.join(tmp, words[2].split(":", 1)[1]), "wb") as f:
            f.write(body)
    return ""
sys.modules["cli"] = types.SimpleNamespace(cli=cli, clid=cli)
with open(script) as f:
    text = f.read().replace('"/bootflash/', '"%s/' % tmp)
g = {"__name__": "under_test"}
exec(compile(text, script, "exec"), g)
g.update(AGENT_URL=url, AGENT_TRIES=tries, AGENT_PAUSE=0)
g["FACTS"].update(ip="10.99.0.9", serial="SER1")
g["log"] = lambda message: sys.stderr.write(message + "\n")
def fail(text):
    sys.stderr.write("FAILED: " + text + "\n")
    sys.exit(3)
g["fail"] = fail
settings = {"agent": {"operation_mode": "full", "password": "never-sent-by-nxos"},
            "device_user": "admin", "device_user_password": "pw"}
sys.stdout.write(g["create_agent"](settings))
"#;

#[test]
fn python_scripts_ask_for_the_agent_again_when_the_server_fails() {
    let Some(python) = oracle("python3") else {
        return;
    };
    for file in ["ztp-nxos.py", "ztp-junos-evo.py"] {
        let script = root().join("golden/dc1/tftp").join(file);
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.contains("AGENT_TRIES = 3\n"), "{file}");
        for (tries, fail_first, ok) in [(3, 2, true), (3, 3, false), (1, 1, false)] {
            let (port, seen) = server(fail_first);
            let work = tempfile::tempdir().unwrap();
            let url = format!("http://127.0.0.1:{port}/api/ztp/create_agent");
            let out = Command::new(&python)
                .args(["-c", PY_HARNESS])
                .arg(&script)
                .arg(work.path())
                .args([url.as_str(), &tries.to_string()])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let requests = (fail_first + 1).min(tries);
            assert_eq!(seen.load(Ordering::SeqCst), requests, "{file} {tries}/{fail_first}: {stderr}");
            if ok {
                assert!(out.status.success(), "{file}: {stderr}");
                assert!(
                    stdout.starts_with("agent requested for 10.99.0.9 as admin: ")
                        && stdout.ends_with(r#"{"id":"job-1","state":"queued"}"#),
                    "{file}: {stdout}"
                );
                assert!(stderr.contains("failed (try 2 of 3)"), "{file}: {stderr}");
            } else {
                assert_eq!(out.status.code(), Some(3), "{file}: gives up after {tries} tries: {stderr}");
                assert!(stderr.contains(&format!("failed ({tries} tries)")), "{file}: {stderr}");
            }
        }
    }
}
