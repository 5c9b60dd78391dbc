//! HTTP side of agent install:
//! - `POST /api/ztp/create_agent` (JSON body) and `GET /api/ztp/create_agent?...`
//!   (NX-OS POAP, which can only GET; no password in the URL): a device asks for its own
//!   address only; with the admin token an operator may ask for any address (to retry).
//!   Answer: 202 (POST) or 200 (GET, for POAP's `copy`) `{"id", "state": "queued"}`;
//!   409 when the fabric has no controller.
//! - `GET /api/ztp/agents[?ip=A]` and `GET /api/ztp/agents/{id}`: the jobs and their state.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::{SubmitError, request};
use crate::files::Body;
use crate::http::Ctx;

/// An agent request is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let b = Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed();
    let mut r = Response::new(b);
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": msg }))
}

/// Constant-time comparison, as for the other admin actions.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Some(true): a valid admin token; Some(false): a token that is wrong; None: none given.
fn admin_token(ctx: &Ctx, req: &Request<Incoming>) -> Option<bool> {
    let h = req.headers();
    let given = h.get("authtoken").and_then(|v| v.to_str().ok()).or_else(|| {
        h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    })?;
    Some(ctx.admin_token.as_ref().is_some_and(|want| same_secret(given.as_bytes(), want.as_bytes())))
}

/// `POST` or `GET /api/ztp/create_agent`.
pub async fn create_agent(ctx: &Arc<Ctx>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let is_get = req.method() == Method::GET;
    let admin = admin_token(ctx, &req);
    let parsed = if is_get {
        request::from_query(req.uri().query().unwrap_or(""))
    } else {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => request::from_json(&b.to_bytes()),
            Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large or unreadable"),
        }
    };
    let r = match parsed {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(%peer, error = %e, "agent request refused");
            return error(StatusCode::BAD_REQUEST, &format!("bad agent request: {e}"));
        }
    };
    let claimed = r.management_ip.to_canonical();
    let own = claimed == peer.ip().to_canonical();
    if !own && admin != Some(true) {
        let why = if admin == Some(false) { "a wrong admin token" } else { "no admin token" };
        tracing::warn!(%peer, claimed = %claimed, "refused an agent request for another address ({why})");
        return error(
            StatusCode::FORBIDDEN,
            "a device may only ask for an agent for its own address (an operator needs the admin token)",
        );
    }
    // Only NX-OS asks by GET: its settings are looked up as nxos if nothing else says.
    let hint = is_get.then_some("nxos");
    match ctx.agents.submit(r, hint, !own).await {
        Ok(v) => {
            let status = if is_get { StatusCode::OK } else { StatusCode::ACCEPTED };
            json(status, &serde_json::json!({"id": v.id, "state": v.state, "management_ip": v.management_ip}))
        }
        Err(SubmitError::NoController) => error(
            StatusCode::CONFLICT,
            "the fabric declares no controller, so no agent can be installed: add a `controller` block \
             (url, user, password) to the fabric",
        ),
        Err(SubmitError::BadRequest(m)) => {
            tracing::info!(%peer, error = %m, "agent request refused");
            error(StatusCode::BAD_REQUEST, &m)
        }
        Err(SubmitError::Busy) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "too many agent jobs running; retry later")
        }
    }
}

/// `GET /api/ztp/agents`, `GET /api/ztp/agents?ip=A`, `GET /api/ztp/agents/{id}`;
/// `api` is the path after `/api/ztp/`.
pub fn agents(ctx: &Ctx, api: &str, query: Option<&str>) -> Response<Body> {
    match api.strip_prefix("agents").unwrap_or(api) {
        "" | "/" => {
            let mut ip = None;
            for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("ip", v)) => ip = Some(v.to_string()),
                    _ => return error(StatusCode::BAD_REQUEST, "the only query field is `ip`"),
                }
            }
            if ip.as_deref().is_some_and(|v| v.parse::<std::net::IpAddr>().is_err()) {
                return error(StatusCode::BAD_REQUEST, "ip is not an IP address");
            }
            json(StatusCode::OK, &ctx.agents.list(ip.as_deref()))
        }
        rest => match rest.strip_prefix('/').and_then(|id| ctx.agents.get(id)) {
            Some(v) => json(StatusCode::OK, &v),
            None => error(StatusCode::NOT_FOUND, "no such agent job"),
        },
    }
}
