//! Shared helpers for the agent tests (included with `#[path]`; as its own test target
//! it has no tests): a scripted mock controller (login, list, delete, create, get of
//! system agents; plain HTTP or TLS) on 127.0.0.1 port 0, a runtime serving a copy of
//! examples/dc1 whose controller points at it, and a raw HTTP client that sends from
//! a chosen 127.0.0.x address, as a device at that address would.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztp_runtime::agent::{AgentConfig, Agents};
use ztp_runtime::generation::Generation;
use ztp_runtime::http::Ctx;
use ztp_runtime::services::Services;
use ztp_runtime::state::State;
use ztp_runtime::status::Store;

pub const DC1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/dc1");
/// From examples/dc1/demo.env.
pub const CONTROLLER_PW: &str = "demo-apstra-ztp-pw";
pub const DEVICE_PW: &str = "demo-device-pw";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

// ---------------------------------------------------------------------------------
// The mock controller

/// A scripted answer that replaces the normal one for the next call of an endpoint.
#[derive(Debug, Clone)]
pub enum Fail {
    Status(u16, String),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Say nothing for this long (a slow controller).
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct MockAgent {
    pub ip: String,
    pub polls: u32,
    pub body: Value,
}

#[derive(Debug)]
pub struct MockState {
    pub user: String,
    pub password: String,
    pub tokens: HashMap<String, u32>,
    /// A token works for this many calls, then gets 401 (None: forever).
    pub token_uses: Option<u32>,
    pub logins: u32,
    pub agents: BTreeMap<String, MockAgent>,
    pub next_id: u32,
    pub requests: Vec<Seen>,
    /// Keyed by endpoint: login, list, delete, create, get.
    pub fail: HashMap<&'static str, VecDeque<Fail>>,
    /// Polls answered `disconnected` before `final_state`.
    pub connect_after: u32,
    pub final_state: String,
    /// `last_job_status.error` of every agent (a controller may quote anything there).
    pub job_error: String,
}

impl MockState {
    pub fn fail(&mut self, endpoint: &'static str, f: Fail) {
        self.fail.entry(endpoint).or_default().push_back(f);
    }

    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.requests.iter().filter(|s| s.method == method && s.path.starts_with(prefix)).count()
    }

    pub fn add_agent(&mut self, id: &str, ip: &str) {
        self.agents.insert(id.into(), MockAgent { ip: ip.into(), polls: 0, body: json!({}) });
    }
}

pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<MockState>>,
    pub url: String,
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

async fn handle(st: Arc<Mutex<MockState>>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let token = req.headers().get("authtoken").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = String::from_utf8_lossy(&body).to_string();
    let endpoint = match (method.as_str(), path.as_str()) {
        ("POST", "/api/user/login") => "login",
        ("GET", "/api/system-agents") => "list",
        ("POST", "/api/system-agents") => "create",
        ("DELETE", p) if p.starts_with("/api/system-agents/") => "delete",
        ("GET", p) if p.starts_with("/api/system-agents/") => "get",
        _ => "other",
    };
    let scripted = {
        let mut s = st.lock().unwrap();
        s.requests.push(Seen {
            method: method.clone(),
            path: path.clone(),
            token: token.clone(),
            body: body.clone(),
        });
        s.fail.get_mut(endpoint).and_then(VecDeque::pop_front)
    };
    match scripted {
        Some(Fail::Status(code, text)) => return reply(code, text),
        Some(Fail::Garbage) => return reply(200, "<html>this is not json".into()),
        Some(Fail::Hang(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let mut s = st.lock().unwrap();
    if endpoint == "login" {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if v["username"] == s.user.as_str() && v["password"] == s.password.as_str() {
            s.logins += 1;
            let t = format!("tok-{}", s.logins);
            s.tokens.insert(t.clone(), 0);
            return reply(200, json!({"token": t, "id": "user-1"}).to_string());
        }
        return reply(401, json!({"errors": "invalid credentials"}).to_string());
    }
    let limit = s.token_uses;
    let ok = match token.as_ref().and_then(|t| s.tokens.get_mut(t)) {
        Some(uses) => {
            *uses += 1;
            limit.is_none_or(|l| *uses <= l)
        }
        None => false,
    };
    if !ok {
        return reply(401, json!({"errors": "auth token invalid or expired"}).to_string());
    }
    let id_of = |p: &str| p["/api/system-agents/".len()..].to_string();
    match endpoint {
        "list" => {
            let items: Vec<Value> = s
                .agents
                .iter()
                .map(|(id, a)| {
                    json!({"id": id, "config": {"management_ip": a.ip}, "running_config": {"management_ip": a.ip},
                           "status": {"connection_state": "disconnected"}})
                })
                .collect();
            reply(200, json!({"items": items}).to_string())
        }
        "delete" => match s.agents.remove(&id_of(&path)) {
            Some(_) => reply(202, "{}".into()),
            None => reply(404, json!({"errors": "no such agent"}).to_string()),
        },
        "create" => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            s.next_id += 1;
            let id = format!("agent-{}", s.next_id);
            let ip = v["management_ip"].as_str().unwrap_or("").to_string();
            s.agents.insert(id.clone(), MockAgent { ip, polls: 0, body: v });
            reply(201, json!({"id": id}).to_string())
        }
        "get" => {
            let (after, fin, job_error) = (s.connect_after, s.final_state.clone(), s.job_error.clone());
            match s.agents.get_mut(&id_of(&path)) {
                Some(a) => {
                    a.polls += 1;
                    let cs = if a.polls > after { fin } else { "disconnected".to_string() };
                    reply(
                        200,
                        json!({"id": id_of(&path), "status": {"connection_state": cs},
                               "last_job_status": {"state": if job_error.is_empty() { "inprogress" } else { "failed" },
                                                   "job_type": "install", "error": job_error}})
                        .to_string(),
                    )
                }
                None => reply(404, json!({"errors": "no such agent"}).to_string()),
            }
        }
        _ => reply(404, json!({"errors": "no such path"}).to_string()),
    }
}

/// TLS for the mock: (server config, the CA's PEM).
pub fn test_tls() -> (Arc<tokio_rustls::rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .unwrap();
    (Arc::new(cfg), ca_cert.pem())
}

pub async fn start_mock(tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>) -> Mock {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    start_mock_on(listener, tls)
}

/// The mock on a listener the caller bound (e.g. inside a network namespace).
pub fn start_mock_on(
    listener: std::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> Mock {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(MockState {
        user: "ztp".into(),
        password: CONTROLLER_PW.into(),
        tokens: HashMap::new(),
        token_uses: None,
        logins: 0,
        agents: BTreeMap::new(),
        next_id: 0,
        requests: Vec::new(),
        fail: HashMap::new(),
        connect_after: 2,
        final_state: "connected".into(),
        job_error: String::new(),
    }));
    let st = state.clone();
    let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (st, acceptor) = (st.clone(), acceptor.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(st, req).await) }
                });
                let b = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            let _ = b.serve_connection(hyper_util::rt::TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = b.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    Mock { addr, state, url: format!("{scheme}://127.0.0.1:{}", addr.port()) }
}

/// A port nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------
// The runtime

/// Short timings, so that every test runs in seconds.
pub fn fast() -> AgentConfig {
    AgentConfig {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(800),
        attempts: 3,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        poll_interval: Duration::from_millis(20),
        connect_deadline: Duration::from_secs(5),
        settle: Duration::from_millis(300),
        max_calls: 8,
        max_active: 64,
        history: 64,
    }
}

pub struct Rt {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub agents: Arc<Agents>,
    pub state: Arc<State>,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
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

/// examples/dc1's fabric with its controller URL replaced by `url`.
pub fn with_controller(url: &str) -> impl FnOnce(String) -> String {
    let url = url.to_string();
    move |t: String| {
        let old = "controller \"https://10.1.100.2\"";
        assert!(t.contains(old), "examples/dc1 changed: no `{old}`");
        t.replace(old, &format!("controller \"{url}\""))
    }
}

/// examples/dc1's fabric without its controller block.
pub fn without_controller(t: String) -> String {
    let start = t.find("    controller \"").unwrap();
    let end = start + t[start..].find("\n    }\n").unwrap() + "\n    }\n".len();
    format!("{}{}", &t[..start], &t[end..])
}

/// Compile a copy of examples/dc1 (edited by `edit`, with demo.env) and serve its HTTP
/// API on 127.0.0.1 port 0. `ca_pem` replaces the example's ca-cert file.
pub async fn start_runtime(
    edit: impl FnOnce(String) -> String,
    cfg: AgentConfig,
    ca_pem: Option<&str>,
) -> Rt {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dc1");
    copy_dir(Path::new(DC1), &dir);
    if let Some(pem) = ca_pem {
        std::fs::write(dir.join("certs/controller-ca.pem"), pem).unwrap();
    }
    let text = edit(std::fs::read_to_string(dir.join("fabric.kdl")).unwrap());
    std::fs::write(dir.join("fabric.kdl"), &text).unwrap();
    let vars = ztpc::cli::parse_env_file(&std::fs::read_to_string(dir.join("demo.env")).unwrap());
    let env = move |k: &str| vars.get(k).cloned();
    let host = ztpc::Host { base_dir: dir.clone(), env: &env };
    let opts = ztpc::BuildOptions { fabric_dir_from_out: ".".into() };
    let out = ztpc::build(&text, &host, &opts).unwrap();
    assert!(!out.diagnostics.has_errors(), "{:?}", out.diagnostics);
    let g = Generation::from_artifacts(&out.artifacts.unwrap(), &dir).unwrap();
    let state = State::new(g);
    let state_dir = tmp.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let store = Arc::new(Store::open(&state_dir).unwrap());
    let agents = Agents::new(state.clone(), store.clone(), dir.clone(), cfg);
    let ctx = Arc::new(Ctx {
        state: state.clone(),
        store: store.clone(),
        services: Arc::new(Services::default()),
        admin_token: Some(ADMIN_TOKEN.into()),
        agents: agents.clone(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = ztp_runtime::http::serve(ctx, "127.0.0.1:0".parse().unwrap(), tx).await;
    });
    let addr = rx.await.unwrap();
    Rt { addr, store, agents, state, dir, _tmp: tmp }
}

// ---------------------------------------------------------------------------------
// A device's HTTP client

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request from source address `from` (any 127.0.0.x works on Linux).
pub async fn http(
    addr: SocketAddr,
    from: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(5), sock.connect(addr)).await.unwrap().unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: ztp\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the runtime did not answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply { status, body: body.to_string() }
}

pub async fn get(addr: SocketAddr, target: &str) -> Reply {
    http(addr, "127.0.0.1", "GET", target, &[], None).await
}

/// What a bootstrap script sends: `create_agent` with its credentials.
pub fn agent_body(ip: &str, extra: &str) -> String {
    format!(r#"{{"management_ip":"{ip}","username":"aosadmin","password":"{DEVICE_PW}"{extra}}}"#)
}

pub async fn post_agent(addr: SocketAddr, ip: &str, extra: &str) -> Reply {
    http(addr, ip, "POST", "/api/ztp/create_agent", &[], Some(&agent_body(ip, extra))).await
}

/// What the script does right after its agent request.
pub async fn report_done(addr: SocketAddr, ip: &str) {
    let body = format!(r#"{{"ip":"{ip}","task":"ZTP Done","log":"agent requested"}}"#);
    let r = http(addr, ip, "POST", "/api/ztp/device/log", &[], Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Poll a job until it is finished (connected or failed); bounded.
pub async fn wait_job(addr: SocketAddr, id: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let r = get(addr, &format!("/api/ztp/agents/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["state"] == "connected" || v["state"] == "failed" {
            return v;
        }
        assert!(Instant::now() < until, "job {id} not finished within {within:?}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll a device row until its status is completed or failed; bounded.
pub async fn wait_device(addr: SocketAddr, ip: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let r = get(addr, &format!("/api/ztp/device/status/{ip}")).await;
        if r.status == 200 {
            let v = r.json();
            if v["status"] == "completed" || v["status"] == "failed" {
                return v;
            }
        }
        assert!(Instant::now() < until, "device {ip} not finished within {within:?}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The device's log lines (`kind: text`).
pub async fn device_log(addr: SocketAddr, ip: &str) -> Vec<String> {
    let r = get(addr, &format!("/api/ztp/device/{ip}/log")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e["kind"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect()
}
