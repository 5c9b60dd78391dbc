//! A small client for the controller's agent API (reference/apstra-ztp.md §3.3, from
//! the Apstra Go SDK): `POST /api/user/login` → token, sent as the `AuthToken` header
//! and kept until a 401; `GET /api/system-agents` (`{"items": [...]}`, each with
//! `config.management_ip` and `running_config.management_ip`); `DELETE` and `GET
//! /api/system-agents/{id}`; `POST /api/system-agents` → `{"id"}`.
//!
//! One HTTP/1.1 connection per call (hyper's client over tokio-rustls with ring), each
//! call bounded as a whole (connect, TLS, request and response body), and at most
//! `max_calls` calls in flight to the controller whatever the number of jobs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::secret::{Secret, scrub};

/// A controller answer larger than this is refused (an agent list is a few KiB each).
const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// How much of a controller's error body goes into an error message.
const DETAIL: usize = 200;

/// Why a controller call failed. Display never includes a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The fabric's controller settings cannot work (bad URL, unreadable CA): final.
    Config(String),
    Connect(String),
    Tls(String),
    Timeout(&'static str),
    /// A non-success HTTP status; `detail` is the start of the body, scrubbed.
    Status {
        code: u16,
        what: &'static str,
        detail: String,
    },
    /// A success status with a body that is not what the API returns.
    BadAnswer(String),
    /// The controller refused our user and password.
    LoginRefused(u16),
}

impl CallError {
    /// Worth another attempt: the controller may be down, slow or restarting.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Connect(_) | CallError::Tls(_) | CallError::Timeout(_) | CallError::BadAnswer(_) => {
                true
            }
            CallError::Status { code, .. } => *code >= 500 || *code == 429 || *code == 408 || *code == 401,
            CallError::Config(_) | CallError::LoginRefused(_) => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Status { code: 404, .. })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Config(m) => write!(f, "controller settings: {m}"),
            CallError::Connect(m) => write!(f, "cannot reach the controller: {m}"),
            CallError::Tls(m) => write!(f, "TLS with the controller failed: {m}"),
            CallError::Timeout(stage) => write!(f, "the controller did not answer in time ({stage})"),
            CallError::Status { code, what, detail } if detail.is_empty() => {
                write!(f, "{what}: the controller answered HTTP {code}")
            }
            CallError::Status { code, what, detail } => {
                write!(f, "{what}: the controller answered HTTP {code}: {detail}")
            }
            CallError::BadAnswer(m) => write!(f, "unexpected answer from the controller: {m}"),
            CallError::LoginRefused(code) => write!(
                f,
                "the controller refused the login (HTTP {code}): check the fabric's controller user and password"
            ),
        }
    }
}

/// Timeouts and limits of the client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub request: Duration,
    pub max_calls: usize,
}

/// The fabric's controller, as the client needs it. `ca_pem` is the ca-cert file's
/// content (None: the system's trust store).
#[derive(Clone)]
pub struct Settings {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .finish()
    }
}

impl Settings {
    /// Identifies the settings, so a reload that changes them gets a new client (and
    /// a new login), and one that does not keeps the cached token.
    pub fn key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [self.url.as_bytes(), self.user.as_bytes(), self.password.expose().as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(self.ca_pem.as_deref().unwrap_or(b"(system roots)"));
        h.finalize().into()
    }
}

struct Base {
    tls: Option<Arc<ClientConfig>>,
    /// Host name or address, without IPv6 brackets.
    host: String,
    port: u16,
    /// The Host header.
    authority: String,
    /// Path prefix of the URL, without a trailing slash ("" for none).
    prefix: String,
}

/// A agent as listed by the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAgent {
    pub id: String,
    pub management_ips: Vec<String>,
}

/// `GET /api/system-agents/{id}`, the parts the job watches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// `connected`, `disconnected`, `auth_failed`, or "" when the controller has none yet.
    pub connection_state: String,
    /// The agent's last job (`install` ...): its state and error, if any.
    pub job_state: String,
    pub job_error: String,
}

pub struct Controller {
    key: [u8; 32],
    base: Base,
    user: String,
    password: Secret,
    limits: Limits,
    calls: Semaphore,
    /// The cached login token; the lock also makes concurrent logins one login.
    token: tokio::sync::Mutex<Option<Secret>>,
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("host", &self.base.host)
            .field("port", &self.base.port)
            .field("tls", &self.base.tls.is_some())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Trust anchors: the fabric's ca-cert (PEM, one or more certificates) when given,
/// else the system's trust store (rustls-native-certs: /etc/ssl/certs and friends).
fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, CallError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| CallError::Config(format!("ca-cert is not PEM: {e}")))?;
                roots.add(c).map_err(|e| CallError::Config(format!("ca-cert: {e}")))?;
            }
            if roots.is_empty() {
                return Err(CallError::Config("ca-cert holds no certificate".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(CallError::Config(
                    "no system CA certificates found: give the controller a ca-cert in the fabric".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CallError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn base(url: &str, ca_pem: Option<&[u8]>) -> Result<Base, CallError> {
    let uri: hyper::Uri = url.parse().map_err(|_| CallError::Config(format!("`{url}` is not a URL")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(CallError::Config(format!("`{url}` is not an http:// or https:// URL"))),
    };
    let auth = uri.authority().ok_or_else(|| CallError::Config(format!("`{url}` has no host")))?;
    if auth.as_str().contains('@') {
        return Err(CallError::Config("the controller URL must not carry credentials".into()));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https { Some(tls_config(ca_pem)?) } else { None };
    Ok(Base {
        tls,
        host,
        port,
        authority: auth.as_str().to_string(),
        prefix: uri.path().trim_end_matches('/').to_string(),
    })
}

/// Aborts the connection task when the call ends, however it ends (a timeout too).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first bytes of a controller body, one line, printable, scrubbed of `secrets`.
fn detail(body: &[u8], secrets: &[&Secret]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(DETAIL * 4)]);
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(DETAIL).collect();
    scrub(clean.trim(), secrets)
}

/// Agent ids go into URL paths: accept what a controller id looks like, nothing else.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Controller {
    pub fn new(s: &Settings, limits: Limits) -> Result<Controller, CallError> {
        Ok(Controller {
            key: s.key(),
            base: base(&s.url, s.ca_pem.as_deref())?,
            user: s.user.clone(),
            password: s.password.clone(),
            limits,
            calls: Semaphore::new(limits.max_calls.max(1)),
            token: tokio::sync::Mutex::new(None),
        })
    }

    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// One request, bounded as a whole by the request timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let _permit = self.calls.acquire().await.map_err(|_| CallError::Config("client closed".into()))?;
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base.prefix, path))
            .header("host", &self.base.authority)
            .header("accept", "application/json")
            .header("user-agent", concat!("ztp-runtime/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = token {
            b = b.header("authtoken", t.expose());
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| CallError::Config("cannot build a request for this controller URL".into()))?;
        let r = match tokio::time::timeout(self.limits.request, self.connect_and_send(req)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout("no complete answer within the request timeout")),
        };
        crate::metrics::controller_call(&r);
        r
    }

    async fn connect_and_send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), CallError> {
        let addr = (self.base.host.as_str(), self.base.port);
        let tcp = match tokio::time::timeout(self.limits.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(CallError::Connect(format!("{}:{}: {e}", self.base.host, self.base.port)));
            }
            Err(_) => return Err(CallError::Timeout("connecting")),
        };
        let _ = tcp.set_nodelay(true);
        match &self.base.tls {
            None => exchange(tcp, req).await,
            Some(cfg) => {
                let name = ServerName::try_from(self.base.host.clone()).map_err(|_| {
                    CallError::Config(format!("`{}` is not a valid TLS name", self.base.host))
                })?;
                let tls = TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| CallError::Tls(e.to_string()))?;
                exchange(tls, req).await
            }
        }
    }

    /// Log in, or return the cached token.
    pub async fn token(&self) -> Result<Secret, CallError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let body = serde_json::json!({"username": self.user, "password": self.password.expose()});
        let body = serde_json::to_vec(&body).map_err(|e| CallError::Config(e.to_string()))?;
        let (status, bytes) = self.send(Method::POST, "/api/user/login", None, Some(body)).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(CallError::LoginRefused(status.as_u16()));
        }
        let bytes = self.success(status, bytes, "login")?;
        let token = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v.get("token").and_then(Value::as_str).map(str::to_string),
            Err(_) => None,
        };
        let token = token
            .filter(|t| {
                !t.is_empty() && t.len() <= 16 * 1024 && hyper::header::HeaderValue::from_str(t).is_ok()
            })
            .ok_or_else(|| CallError::BadAnswer("the login answer has no usable `token`".into()))?;
        let t = Secret::new(token);
        *cached = Some(t.clone());
        Ok(t)
    }

    /// Forget `used` if it is still the cached token (the controller said 401).
    async fn forget(&self, used: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref() == Some(used) {
            *cached = None;
        }
    }

    /// A call with the token; on 401 log in again once and repeat it.
    async fn authed(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let t = self.token().await?;
        let (status, bytes) = self.send(method.clone(), path, Some(&t), body.clone()).await?;
        if status != StatusCode::UNAUTHORIZED {
            return Ok((status, bytes));
        }
        tracing::info!(path, "controller token refused; logging in again");
        self.forget(&t).await;
        let t = self.token().await?;
        self.send(method, path, Some(&t), body).await
    }

    fn success(&self, status: StatusCode, body: Bytes, what: &'static str) -> Result<Bytes, CallError> {
        if status.is_success() {
            return Ok(body);
        }
        Err(CallError::Status { code: status.as_u16(), what, detail: detail(&body, &[&self.password]) })
    }

    /// Every agent the controller has, with its management addresses.
    pub async fn list_agents(&self) -> Result<Vec<ListedAgent>, CallError> {
        let (status, body) = self.authed(Method::GET, "/api/system-agents", None).await?;
        let body = self.success(status, body, "listing agents")?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| CallError::BadAnswer("the agent list is not JSON".into()))?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| CallError::BadAnswer("the agent list has no `items`".into()))?;
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let Some(id) = it.get("id").and_then(Value::as_str) else { continue };
            let mut ips = Vec::new();
            for part in ["config", "running_config"] {
                if let Some(ip) = it.get(part).and_then(|c| c.get("management_ip")).and_then(Value::as_str)
                    && !ips.iter().any(|x| x == ip)
                {
                    ips.push(ip.to_string());
                }
            }
            out.push(ListedAgent { id: id.to_string(), management_ips: ips });
        }
        Ok(out)
    }

    /// Delete an agent; one that is already gone (404) counts as deleted.
    pub async fn delete_agent(&self, id: &str) -> Result<(), CallError> {
        if !valid_id(id) {
            return Err(CallError::BadAnswer("an agent id with unexpected characters".into()));
        }
        let (status, body) = self.authed(Method::DELETE, &format!("/api/system-agents/{id}"), None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.success(status, body, "deleting an agent").map(|_| ())
    }

    /// Create an agent; `body` carries the device password, so errors are scrubbed of
    /// `secrets` (that password and the fabric's others).
    pub async fn create_agent(&self, body: &Value, secrets: &[Secret]) -> Result<String, CallError> {
        let raw = serde_json::to_vec(body).map_err(|e| CallError::Config(e.to_string()))?;
        let (status, answer) = self.authed(Method::POST, "/api/system-agents", Some(raw)).await?;
        if !status.is_success() {
            return Err(CallError::Status {
                code: status.as_u16(),
                what: "creating the agent",
                detail: detail(&answer, &std::iter::once(&self.password).chain(secrets).collect::<Vec<_>>()),
            });
        }
        let id = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
        match id {
            Some(id) if valid_id(&id) => Ok(id),
            _ => Err(CallError::BadAnswer("the create answer has no usable agent `id`".into())),
        }
    }

    pub async fn agent_status(&self, id: &str) -> Result<AgentStatus, CallError> {
        if !valid_id(id) {
            return Err(CallError::BadAnswer("an agent id with unexpected characters".into()));
        }
        let (status, body) = self.authed(Method::GET, &format!("/api/system-agents/{id}"), None).await?;
        let body = self.success(status, body, "reading the agent")?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| CallError::BadAnswer("the agent is not JSON".into()))?;
        let text = |a: &str, b: &str| {
            v.get(a).and_then(|x| x.get(b)).and_then(Value::as_str).unwrap_or("").to_string()
        };
        Ok(AgentStatus {
            connection_state: text("status", "connection_state"),
            job_state: text("last_job_status", "state"),
            job_error: detail(text("last_job_status", "error").as_bytes(), &[&self.password]),
        })
    }
}

async fn exchange<S>(io: S, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| CallError::Connect(format!("HTTP handshake: {e}")))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender.send_request(req).await.map_err(|e| CallError::Connect(format!("request: {e}")))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| CallError::Connect(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_errors() {
        let b = base("http://[::1]:8443/prefix/", None).unwrap();
        assert_eq!((b.host.as_str(), b.port, b.prefix.as_str()), ("::1", 8443, "/prefix"));
        let b = base("http://10.1.100.2", None).unwrap();
        assert_eq!((b.port, b.prefix.as_str(), b.authority.as_str()), (80, "", "10.1.100.2"));
        assert!(base("ftp://x", None).is_err());
        assert!(base("http://u:p@x", None).is_err());
        assert!(matches!(base("https://x", Some(b"junk")), Err(CallError::Config(_))));
        assert!(CallError::Status { code: 503, what: "x", detail: String::new() }.retryable());
        assert!(!CallError::Status { code: 400, what: "x", detail: String::new() }.retryable());
        assert!(!CallError::LoginRefused(401).retryable());
        let pw = Secret::new("s3cret");
        assert_eq!(detail(b"bad\npassword s3cret", &[&pw]), "bad password ***");
        assert!(valid_id("3f1c-ab_9.x") && !valid_id("../x") && !valid_id(""));
    }
}
