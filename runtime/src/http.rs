//! The HTTP listener (hyper 1): `/healthz`, the Apstra-compatible status API under
//! `/api/ztp/`, and every other path served from the current generation's tree.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::files::{self, Body};
use crate::services::Services;
use crate::state::State;
use crate::status::{Report, Store};

/// Largest request body accepted (a status report is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed (slow-loris bound).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most header lines in one request (hyper answers 431 above it).
pub const MAX_HEADERS: usize = 64;
/// Largest request line plus headers, in bytes (hyper answers 431 above it).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Everything a request handler needs.
pub struct Ctx {
    pub state: Arc<State>,
    pub store: Arc<Store>,
    pub services: Arc<Services>,
    /// Required for admin actions (DELETE); none = admin actions refused.
    pub admin_token: Option<String>,
    /// Agent install through the controller (`create_agent`, `agents`).
    pub agents: Arc<crate::agent::Agents>,
}

pub async fn serve(
    ctx: Arc<Ctx>,
    listen: SocketAddr,
    ready: tokio::sync::oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let _ = ready.send(listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_conn(ctx.clone(), peer, stream));
    }
}

/// Serve one accepted connection (any byte stream) until it closes or a limit cuts it
/// off: the header-read timeout, header size and count, and the buffer size.
pub async fn serve_conn<I>(ctx: Arc<Ctx>, peer: SocketAddr, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(counted(&ctx, peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let b = Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed();
    let mut r = Response::new(b);
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut r = text(status, &s);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": msg }))
}

/// Constant-time comparison, so the admin token cannot be guessed byte by byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn admin_ok(ctx: &Ctx, req: &Request<Incoming>) -> bool {
    let Some(want) = &ctx.admin_token else { return false };
    let h = req.headers();
    let given = h.get("authtoken").and_then(|v| v.to_str().ok()).or_else(|| {
        h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    });
    given.is_some_and(|g| same_secret(g.as_bytes(), want.as_bytes()))
}

/// Run a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// [`route`], counted in `/metrics` (status class, latency to the head, body bytes).
async fn counted(ctx: &Arc<Ctx>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (started, class) = (std::time::Instant::now(), crate::metrics::HttpClass::of(req.uri().path()));
    crate::metrics::http_done(class, started, route(ctx, peer, req).await)
}

async fn route(ctx: &Arc<Ctx>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    // Borrowed, not copied: only the API branch below needs `req` itself again.
    let path = req.uri().path();
    let method = req.method().clone();
    if path == "/metrics" {
        if method != Method::GET && method != Method::HEAD {
            return error(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics");
        }
        let body = crate::metrics::scrape(&ctx.state, ctx.store.clone()).await;
        let mut r = text(StatusCode::OK, if method == Method::HEAD { "" } else { &body });
        r.headers_mut()
            .insert("content-type", hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
        return r;
    }
    if path == "/healthz" {
        return if ctx.services.healthy() {
            text(StatusCode::OK, "ok\n")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
        };
    }
    if let Some(r) = crate::web::route(ctx, &method, path) {
        return r;
    }
    let Some(api) = path.strip_prefix("/api/ztp/") else {
        return file(ctx, peer, &method, path, req.headers()).await;
    };
    let api = api.to_string();
    let store = ctx.store.clone();
    match (&method, api.as_str()) {
        (&Method::POST, "device/log") => report(ctx, peer, req).await,
        // NX-OS POAP can only GET (its `copy http://...`), so its script reports with
        // the same fields in the query string.
        (&Method::GET, "device/log") => match query_report(req.uri().query().unwrap_or("")) {
            Ok(r) => record(ctx, peer, r).await,
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        },
        (&Method::GET, "device/status") => match blocking(move || store.devices()).await {
            Some(Ok(rows)) => json(StatusCode::OK, &rows),
            _ => error(StatusCode::INTERNAL_SERVER_ERROR, "status store unavailable"),
        },
        (&Method::GET, "services") => services(ctx),
        (&Method::POST | &Method::GET, "create_agent") => {
            crate::agent::api::create_agent(ctx, peer, req).await
        }
        (&Method::GET, p) if p == "agents" || p.starts_with("agents/") => {
            crate::agent::api::agents(ctx, p, req.uri().query())
        }
        (&Method::GET, p) if p.starts_with("device/status/") => {
            let ip = p["device/status/".len()..].to_string();
            if ip.parse::<IpAddr>().is_err() {
                return error(StatusCode::BAD_REQUEST, "not an IP address");
            }
            match blocking(move || store.device(&ip)).await {
                Some(Ok(Some(row))) => json(StatusCode::OK, &row),
                Some(Ok(None)) => error(StatusCode::NOT_FOUND, "no such device"),
                _ => error(StatusCode::INTERNAL_SERVER_ERROR, "status store unavailable"),
            }
        }
        (&Method::GET, p) if p.starts_with("device/") && p.ends_with("/log") => {
            let ip = p["device/".len()..p.len() - "/log".len()].to_string();
            if ip.parse::<IpAddr>().is_err() {
                return error(StatusCode::BAD_REQUEST, "not an IP address");
            }
            match blocking(move || store.log(&ip)).await {
                Some(Ok(events)) => json(StatusCode::OK, &events),
                _ => error(StatusCode::INTERNAL_SERVER_ERROR, "status store unavailable"),
            }
        }
        (&Method::DELETE, p) if p.starts_with("device/") => {
            if !admin_ok(ctx, &req) {
                tracing::warn!(%peer, "device delete without a valid admin token");
                return error(StatusCode::FORBIDDEN, "admin token required");
            }
            let ip = p["device/".len()..].to_string();
            if ip.parse::<IpAddr>().is_err() {
                return error(StatusCode::BAD_REQUEST, "not an IP address");
            }
            let gone = ip.clone();
            match blocking(move || store.delete(&ip)).await {
                Some(Ok(true)) => {
                    crate::web::live::deleted(&gone);
                    json(StatusCode::OK, &serde_json::json!({"deleted": true}))
                }
                Some(Ok(false)) => error(StatusCode::NOT_FOUND, "no such device"),
                _ => error(StatusCode::INTERNAL_SERVER_ERROR, "status store unavailable"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such API endpoint"),
    }
}

/// A file of the current generation: access check, [`files::respond`], the progress
/// tracker of a large download, and the fetch in the device's log.
async fn file(
    ctx: &Ctx,
    peer: SocketAddr,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    // One generation for the whole answer: access, headers and bytes.
    let current = ctx.state.current();
    let target = files::Target::of(path);
    if let Ok(clean) = &target.clean
        && let crate::access::Access::Refused { device, owner } =
            crate::access::check(&current, clean, peer.ip())
    {
        crate::access::report(&ctx.state, "http", peer.ip(), clean, &device, owner);
        return text(StatusCode::FORBIDDEN, "forbidden: this script belongs to another device\n");
    }
    let resp = files::respond(&current, peer, method, &target, headers).await;
    let resp = crate::progress::http(peer.ip(), path, method, resp);
    if method == Method::GET {
        let len = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("0");
        // Sized up front: `format!` guesses short and grows the string.
        let mut text = String::with_capacity(path.len() + len.len() + 24);
        let _ = write!(text, "GET {path}: {} ({len} bytes)", resp.status().as_u16());
        ctx.state.event(crate::events::Event {
            ip: peer.ip().to_string(),
            kind: "http",
            text,
            name: None,
            mac: None,
        });
    }
    resp
}

async fn report(ctx: &Arc<Ctx>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large or unreadable"),
    };
    let r: Report = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad report: {e}")),
    };
    record(ctx, peer, r).await
}

/// `ip=..&system_id=..&platform=..&task=..&log=..`, form-encoded (`+` is a space).
fn query_report(q: &str) -> Result<Report, String> {
    let mut r = Report::default();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8()
            .map_err(|_| "query is not valid UTF-8".to_string())?
            .into_owned();
        match k {
            "ip" => r.ip = v,
            "system_id" => r.system_id = Some(v),
            "platform" => r.platform = Some(v),
            "task" => r.task = Some(v),
            "log" => r.log = Some(v),
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    Ok(r)
}

async fn record(ctx: &Arc<Ctx>, peer: SocketAddr, r: Report) -> Response<Body> {
    let Ok(ip) = r.ip.parse::<IpAddr>() else {
        return error(StatusCode::BAD_REQUEST, "ip is not an IP address");
    };
    // A device may only report for itself (its own source address).
    if ip != peer.ip() {
        tracing::warn!(%peer, claimed = %ip, "refused a status report for another address");
        return error(StatusCode::FORBIDDEN, "a device may only report for its own address");
    }
    let store = ctx.store.clone();
    let (task, log) = (r.task.clone().unwrap_or_default(), r.log.clone().unwrap_or_default());
    match blocking(move || store.report(&r)).await {
        Some(Ok(row)) => {
            tracing::info!(ip = %row.ip_addr, status = %row.status, task = %row.task, "device report");
            crate::web::live::reported(&row, &task, &log);
            json(StatusCode::OK, &row)
        }
        _ => error(StatusCode::SERVICE_UNAVAILABLE, "status store unavailable; retry"),
    }
}

fn services(ctx: &Ctx) -> Response<Body> {
    let current = ctx.state.current();
    let refused = ctx.state.last_refusal();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "services": ctx.services.list(),
            "generation": current.id,
            "fabric": current.manifest.fabric,
            "last_refused_reload": refused.map(|r| serde_json::json!({"at": r.at, "reason": r.reason})),
            "storage": crate::storage::STORAGE.report(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn query_reports_decode() {
        let r = query_report("ip=10.0.0.5&task=ZTP+Done&log=copy%20ok%3A+100%25&system_id=SAL1").unwrap();
        assert_eq!(r.ip, "10.0.0.5");
        assert_eq!(r.task.as_deref(), Some("ZTP Done"));
        assert_eq!(r.log.as_deref(), Some("copy ok: 100%"));
        assert!(query_report("ip=1&evil=2").is_err());
        assert!(query_report("log=%ff").is_err());
    }
}
