//! HTTP file serving over the wire on 127.0.0.1: GET/HEAD, ETag and 304, Range (206,
//! 416, multiple ranges), methods, the path-traversal table, curl (download, range,
//! resume), and a download in flight across a generation swap.

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::*;
use ztp_runtime::state::State;

const TREE_LEN: usize = 300_001;
/// Three 256 KiB streaming chunks and a bit: ranges can straddle chunk edges.
const IMAGE_LEN: usize = 3 * 262_144 + 12_345;

async fn setup() -> (tempfile::TempDir, Arc<State>, SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dc1_copy(tmp.path(), TREE_LEN, IMAGE_LEN, 7);
    let state = State::new(build(&dir));
    let addr = start_http(Arc::clone(&state)).await;
    (tmp, state, addr)
}

async fn get(addr: SocketAddr, method: &str, target: &str, extra: &[&str]) -> HttpReply {
    let (m, t) = (method.to_string(), target.as_bytes().to_vec());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let e: Vec<&str> = extra.iter().map(String::as_str).collect();
        http_raw(addr, &m, &t, &e)
    })
    .await
    .unwrap()
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_head_etag_and_types() {
    let (_tmp, state, addr) = setup().await;
    let g = state.current();
    for (path, ctype) in
        [("ztp.json", "application/json"), (BIG_TREE, "text/plain"), (IMAGE, "application/octet-stream")]
    {
        let want = tree_bytes(&g, path);
        let etag = format!("\"{}\"", sha_hex(&want));
        let r = get(addr, "GET", &format!("/{path}"), &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == want, "{path}: body differs ({} of {} bytes)", r.body.len(), want.len());
        assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()), "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{path}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{path}");

        let h = get(addr, "HEAD", &format!("/{path}"), &[]).await;
        assert_eq!((h.status, h.body.len()), (200, 0), "{path}");
        assert_eq!(h.header("content-length"), r.header("content-length"), "{path}");
        assert_eq!(h.header("etag"), r.header("etag"), "{path}");

        for inm in [etag.clone(), format!("W/{etag}"), format!("\"nope\", {etag}"), "*".to_string()] {
            let c = get(addr, "GET", &format!("/{path}"), &[&format!("If-None-Match: {inm}")]).await;
            assert_eq!((c.status, c.body.len()), (304, 0), "{path} {inm}");
            assert_eq!(c.header("etag"), Some(etag.as_str()));
        }
        let c = get(addr, "GET", &format!("/{path}"), &["If-None-Match: \"other\""]).await;
        assert_eq!(c.status, 200, "{path}");
    }

    for m in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = get(addr, m, "/ztp.json", &["Content-Length: 0"]).await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let r = get(addr, "GET", "/no/such/file.sh", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (404, &b"not found\n"[..]));
    // A query string does not change which file is served.
    let r = get(addr, "GET", "/ztp.json?x=1", &[]).await;
    assert!(r.status == 200 && r.body == tree_bytes(&g, "ztp.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges() {
    let (_tmp, state, addr) = setup().await;
    let g = state.current();
    for path in [BIG_TREE, IMAGE] {
        let want = tree_bytes(&g, path);
        let n = want.len();
        let etag = format!("\"{}\"", sha_hex(&want));
        let parts = [
            ("bytes=0-0", 0, 1),
            ("bytes=0-99", 0, 100),
            ("bytes=262000-524500", 262_000, 524_501.min(n)),
            ("bytes=100000-", 100_000, n),
            ("bytes=-100", n - 100, n),
            ("bytes=-99999999", 0, n),
            ("bytes=5-99999999", 5, n),
        ];
        for (range, a, b) in parts {
            let r = get(addr, "GET", &format!("/{path}"), &[&format!("Range: {range}")]).await;
            assert_eq!(r.status, 206, "{path} {range}");
            assert!(r.body == want[a..b], "{path} {range}: body differs");
            assert_eq!(r.header("content-range"), Some(format!("bytes {a}-{}/{n}", b - 1).as_str()));
            assert_eq!(r.header("content-length"), Some((b - a).to_string().as_str()));
        }
        for range in [format!("bytes={n}-"), format!("bytes={n}-{}", n + 10), "bytes=-0".to_string()] {
            let r = get(addr, "GET", &format!("/{path}"), &[&format!("Range: {range}")]).await;
            assert_eq!(r.status, 416, "{path} {range}");
            assert_eq!(r.header("content-range"), Some(format!("bytes */{n}").as_str()));
        }
        // Multiple ranges, malformed ranges, a stale If-Range and HEAD: the whole file.
        for (method, hdrs) in [
            ("GET", vec!["Range: bytes=0-1,5-6".to_string()]),
            ("GET", vec!["Range: bytes=9-3".to_string()]),
            ("GET", vec!["Range: lines=1-2".to_string()]),
            ("GET", vec!["Range: bytes=0-9".to_string(), "If-Range: \"stale\"".to_string()]),
            ("HEAD", vec!["Range: bytes=0-9".to_string()]),
        ] {
            let h: Vec<&str> = hdrs.iter().map(String::as_str).collect();
            let r = get(addr, method, &format!("/{path}"), &h).await;
            assert_eq!(r.status, 200, "{path} {method} {hdrs:?}");
            assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
            if method == "GET" {
                assert!(r.body == want, "{path} {hdrs:?}");
            }
        }
        let r = get(addr, "GET", &format!("/{path}"), &["Range: bytes=10-19", &format!("If-Range: {etag}")])
            .await;
        assert!(r.status == 206 && r.body == want[10..20], "{path}: If-Range with the current tag");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_is_refused() {
    let (_tmp, _state, addr) = setup().await;
    let long = format!("/devices/{}", "a".repeat(600));
    // (request target, expected status). 400: refused by the path rules (or by hyper's
    // request-line parser, for bytes that are not legal in a URI); 404: a clean name
    // that is simply not in the tree.
    let table: Vec<(&str, u16)> = vec![
        ("/../etc/passwd", 400),
        ("/devices/../../etc/passwd", 400),
        ("/..", 400),
        ("/%2e%2e/etc/passwd", 400),
        ("/%2E%2E%2Fetc%2Fpasswd", 400),
        ("/devices/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/%252e%252e/ztp.json", 404),
        ("/custom\\..\\..\\etc\\passwd", 400),
        ("/custom%5c..%5c..%5cetc%5cpasswd", 400),
        ("/ztp.json%00", 400),
        ("/ztp.json%00.sh", 400),
        ("/%ff%fe", 400),
        ("/etc/passwd", 404),
        ("//etc/passwd", 404),
        ("/", 400),
        (&long, 400),
    ];
    for (target, want) in table {
        let r = get(addr, "GET", target, &[]).await;
        let shown = &target[..target.len().min(50)];
        assert_eq!(r.status, want, "{shown}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.body.len() < 64, "{shown}: short body, no detail");
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_download_range_and_resume() {
    if !oracle("curl") {
        return;
    }
    let (tmp, state, addr) = setup().await;
    let want = tree_bytes(&state.current(), IMAGE);
    let url = format!("http://{addr}/{IMAGE}");
    let out = tmp.path().join("curl.out");
    let o = out.to_str().unwrap().to_string();
    let curl = |args: Vec<String>| tokio::task::spawn_blocking(move || run("curl", &args));

    let (ok, err) = curl(vec!["-sSf".into(), "-o".into(), o.clone(), url.clone()]).await.unwrap();
    assert!(ok && std::fs::read(&out).unwrap() == want, "curl GET: {err}");

    let (ok, err) =
        curl(vec!["-sSf".into(), "-r".into(), "300000-600000".into(), "-o".into(), o.clone(), url.clone()])
            .await
            .unwrap();
    assert!(ok && std::fs::read(&out).unwrap() == want[300_000..=600_000], "curl -r: {err}");

    // Resume an interrupted download: curl asks for the rest with `Range: bytes=N-`.
    std::fs::write(&out, &want[..123_456]).unwrap();
    let (ok, err) = curl(vec!["-sSf".into(), "-C".into(), "-".into(), "-o".into(), o.clone(), url.clone()])
        .await
        .unwrap();
    assert!(ok && std::fs::read(&out).unwrap() == want, "curl -C -: {err}");

    let (ok, _) = curl(vec![
        "-sSf".into(),
        "--path-as-is".into(),
        "-o".into(),
        o,
        format!("http://{addr}/../etc/passwd"),
    ])
    .await
    .unwrap();
    assert!(!ok, "curl --path-as-is /../etc/passwd must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_in_flight_keeps_its_generation() {
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    let (tree_len, image_len) = (4_000_000, 8_000_000);
    let dir_a = dc1_copy(tmp_a.path(), tree_len, image_len, 1);
    let dir_b = dc1_copy(tmp_b.path(), tree_len, image_len, 2);
    let state = State::new(build(&dir_a));
    let addr = start_http(Arc::clone(&state)).await;
    for path in [BIG_TREE, IMAGE] {
        state.swap(build(&dir_a));
        let old = tree_bytes(&state.current(), path);
        let (s, d) = (Arc::clone(&state), dir_b.clone());
        let got = tokio::task::spawn_blocking(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(c, "GET /{path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
            let mut raw = vec![0u8; 4096];
            c.read_exact(&mut raw).unwrap();
            s.swap(build(&d));
            c.read_to_end(&mut raw).unwrap();
            parse_reply(&raw)
        })
        .await
        .unwrap();
        assert_eq!(got.status, 200);
        assert!(got.body == old, "{path}: a download across a swap must finish with the old bytes");
        let new = get(addr, "GET", &format!("/{path}"), &[]).await;
        assert!(new.body == tree_bytes(&state.current(), path) && new.body != old, "{path}: new bytes after");
    }
}

/// Status, headers and body of one reply read off a keep-alive connection.
fn read_reply(c: &mut TcpStream) -> HttpReply {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = parse_reply(&raw);
    let len: usize = head.header("content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    HttpReply { body, ..head }
}

/// The headers of a file (length, ETag, the conditionals that compare with it) come
/// from the generation current at each request, also on one keep-alive connection that
/// spans a reload: a small in-memory file (the size of the EOS bootstrap script) whose
/// bytes and length change gets its new length and tag at once, the old tag no longer
/// matches (If-None-Match: the new body; If-Range: the whole new file), and the new tag
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_follow_the_generation_across_a_reload() {
    let (tmp_a, tmp_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir_a = dc1_copy(tmp_a.path(), 15_910, IMAGE_LEN, 3);
    let dir_b = dc1_copy(tmp_b.path(), 15_000, IMAGE_LEN, 4);
    let state = State::new(build(&dir_a));
    let addr = start_http(Arc::clone(&state)).await;
    let (a, b) = (tree_bytes(&state.current(), BIG_TREE), tree_bytes(&build(&dir_b), BIG_TREE));
    assert!(a.len() == 15_910 && b.len() == 15_000 && a[..15_000] != b[..]);
    let (tag_a, tag_b) = (format!("\"{}\"", sha_hex(&a)), format!("\"{}\"", sha_hex(&b)));
    let st = Arc::clone(&state);
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ask = |extra: &str| {
            write!(c, "GET /{BIG_TREE} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").unwrap();
            read_reply(&mut c)
        };
        for _ in 0..3 {
            let r = ask("");
            assert_eq!((r.status, r.header("etag")), (200, Some(tag_a.as_str())));
            assert_eq!(r.header("content-length"), Some("15910"));
            assert!(r.body == a);
        }
        assert_eq!(ask(&format!("If-None-Match: {tag_a}\r\n")).status, 304);

        st.swap(build(&dir_b));
        let r = ask("");
        assert_eq!((r.status, r.header("etag")), (200, Some(tag_b.as_str())), "the new tag at once");
        assert_eq!(r.header("content-length"), Some("15000"));
        assert!(r.body == b, "the new bytes");
        let r = ask(&format!("If-None-Match: {tag_a}\r\n"));
        assert!(r.status == 200 && r.body == b, "an old tag no longer matches");
        let r = ask(&format!("If-None-Match: {tag_b}\r\n"));
        assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, Some(tag_b.as_str())));
        let r = ask(&format!("Range: bytes=0-9\r\nIf-Range: {tag_a}\r\n"));
        assert!(r.status == 200 && r.body == b, "If-Range with an old tag: the whole new file");
        let r = ask(&format!("Range: bytes=0-9\r\nIf-Range: {tag_b}\r\n"));
        assert!(r.status == 206 && r.body == b[..10], "If-Range with the new tag: the range");
        assert_eq!(r.header("content-range"), Some("bytes 0-9/15000"));
        let r = ask("");
        assert!(r.status == 200 && r.body == b && r.header("content-length") == Some("15000"));
    })
    .await
    .unwrap();
}

/// A log sink for the one test that installs a global subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A refused path is logged with the address that asked (files.rs puts it on the line
/// itself; no per-request span carries it any more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_path_is_logged_with_the_peer() {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let (_tmp, _state, addr) = setup().await;
    let (tx, peer) = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let me = c.local_addr().unwrap();
        write!(c, "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        (read_reply(&mut c), me)
    })
    .await
    .unwrap();
    assert_eq!(tx.status, 400);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "http: refused path" && v["fields"]["peer"] == peer.to_string())
        .unwrap_or_else(|| panic!("no refusal line naming {peer} in:\n{text}"));
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["path"], "/%2e%2e/etc/passwd");
}
