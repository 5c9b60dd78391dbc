//! Shared helpers for the TFTP and HTTP wire tests (included with `#[path]`; as its own
//! test target it has no tests): example generations, servers on 127.0.0.1 port 0, a
//! raw HTTP client, a minimal TFTP client, and the oracle-tool check.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ztp_runtime::generation::Generation;
use ztp_runtime::state::State;

pub const DC1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/dc1");
/// A large tree file (custom-config) and a local image, both rewritten by [`dc1_copy`].
pub const BIG_TREE: &str = "custom/scripts/common.sh";
pub const IMAGE: &str = "images/sonic-broadcom-202311.bin";

/// Deterministic bytes that differ per `seed`, so two generations never look alike.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of examples/dc1 in `dir`, with a `tree_len`-byte custom-config and an
/// `image_len`-byte image, both filled from `seed`. Sizes not multiples of any chunk or
/// block size exercise the edges.
pub fn dc1_copy(dir: &Path, tree_len: usize, image_len: usize, seed: u64) -> PathBuf {
    copy_dir(Path::new(DC1), dir);
    std::fs::write(dir.join("scripts/common.sh"), pattern(tree_len, seed)).unwrap();
    std::fs::write(dir.join("images/sonic-broadcom-202311.bin"), pattern(image_len, seed ^ 0xff)).unwrap();
    dir.to_path_buf()
}

/// Compile `dir/fabric.kdl` with `dir/demo.env` as `ztp-runtime fabric.kdl` would.
pub fn build(dir: &Path) -> Generation {
    let text = std::fs::read_to_string(dir.join("fabric.kdl")).unwrap();
    let env_text = std::fs::read_to_string(dir.join("demo.env")).unwrap();
    let vars = ztpc::cli::parse_env_file(&env_text);
    let env = move |k: &str| vars.get(k).cloned();
    let host = ztpc::Host { base_dir: dir.to_path_buf(), env: &env };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: ".".into() };
    let out = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    Generation::from_artifacts(&out.artifacts.unwrap(), dir).unwrap()
}

pub fn tree_bytes(g: &Generation, path: &str) -> Vec<u8> {
    match g.get(path).unwrap() {
        ztp_runtime::generation::Served::Tree(f) => f.read_all().unwrap().to_vec(),
        ztp_runtime::generation::Served::Image(i) => std::fs::read(i.path).unwrap(),
    }
}

pub async fn start_tftp(state: Arc<State>) -> SocketAddr {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = ztp_runtime::tftp::serve(state, "127.0.0.1:0".parse().unwrap(), tx).await {
            panic!("tftp server: {e}");
        }
    });
    rx.await.unwrap()
}

/// A bare HTTP/1 server that hands every request to `files::respond` with the
/// generation current at that moment, as the real router does for non-API paths.
pub async fn start_http(state: Arc<State>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let g = state.current();
                    async move {
                        let target = ztp_runtime::files::Target::of(req.uri().path());
                        let r =
                            ztp_runtime::files::respond(&g, peer, req.method(), &target, req.headers()).await;
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    addr
}

#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Send `method target` byte for byte (no client-side normalisation of `..` or `%2e`)
/// with `extra` header lines, and read the whole reply (Connection: close).
pub fn http_raw(addr: SocketAddr, method: &str, target: &[u8], extra: &[&str]) -> HttpReply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in extra {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> HttpReply {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpReply { status, headers, body: raw[end + 4..].to_vec() }
}

/// The result of a TFTP read: the file, or the server's (code, message) / a local failure.
pub type TftpResult = Result<Vec<u8>, (u16, String)>;

/// A minimal RFC 1350/2347/2348 read client that sends the file name byte for byte, so
/// the traversal table reaches the server unnormalised. `on_first` runs after the first
/// DATA block arrives and before it is acknowledged (to hold a transfer in flight).
pub fn tftp_read(addr: SocketAddr, name: &[u8], blksize: Option<u16>, on_first: impl FnOnce()) -> TftpResult {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name);
    rrq.extend_from_slice(b"\0octet\0");
    if let Some(b) = blksize {
        rrq.extend_from_slice(format!("blksize\0{b}\0").as_bytes());
    }
    sock.send_to(&rrq, addr).unwrap();
    let mut block = blksize.map_or(512, usize::from);
    let mut out = Vec::new();
    let mut want: u16 = 1;
    let mut on_first = Some(on_first);
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| (999, format!("no reply: {e}")))?;
        let p = &buf[..n];
        match u16::from_be_bytes([p[0], p[1]]) {
            5 => {
                let msg = String::from_utf8_lossy(&p[4..]).trim_end_matches('\0').to_string();
                return Err((u16::from_be_bytes([p[2], p[3]]), msg));
            }
            6 => {
                let fields: Vec<&[u8]> = p[2..].split(|b| *b == 0).collect();
                for kv in fields.chunks(2) {
                    if kv.len() == 2 && kv[0].eq_ignore_ascii_case(b"blksize") {
                        block = String::from_utf8_lossy(kv[1]).parse().unwrap();
                    }
                }
                sock.send_to(&[0, 4, 0, 0], from).unwrap();
            }
            3 => {
                let got = u16::from_be_bytes([p[2], p[3]]);
                if got == want {
                    out.extend_from_slice(&p[4..]);
                    if let Some(f) = on_first.take() {
                        f();
                    }
                    want = want.wrapping_add(1);
                }
                sock.send_to(&[0, 4, p[2], p[3]], from).unwrap();
                if got == want.wrapping_sub(1) && n - 4 < block {
                    return Ok(out);
                }
            }
            other => return Err((998, format!("unexpected opcode {other}"))),
        }
    }
}

/// Is the command-line tool there? Missing is a failure with ZTP_REQUIRE_ORACLES=1 (CI),
/// else the caller prints SKIPPED and returns.
pub fn oracle(tool: &str) -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var("ZTP_REQUIRE_ORACLES").as_deref() != Ok("1"),
            "{tool} is required (ZTP_REQUIRE_ORACLES=1) but not on PATH"
        );
        println!("SKIPPED: {tool} not installed");
    }
    found
}

/// Run a tool with arguments and return its exit status and stderr.
pub fn run<S: AsRef<std::ffi::OsStr>>(tool: &str, args: &[S]) -> (bool, String) {
    let out = std::process::Command::new(tool).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Whether the generation keeps the tree file at `path` on disk (an open descriptor,
/// read on request) rather than in memory.
pub fn on_disk(g: &Generation, path: &str) -> bool {
    use ztp_runtime::generation::{Data, Served};
    match g.get(path).unwrap() {
        Served::Tree(f) => matches!(f.data(), Data::Disk(..)),
        Served::Image(_) => panic!("{path} is not a tree file"),
    }
}
