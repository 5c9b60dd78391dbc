//! Live updates for the web page: a process-wide broadcast of changes (device rows,
//! log lines, deletions) and the server-sent-events stream (`GET /api/events`) that
//! carries them, with a full snapshot first and whenever a client fell behind.
//!
//! Changes are serialised once, when published, and only while someone listens. The
//! hub is a `static` like the counters in `metrics`: the writers (the report handler,
//! the events writer, the agent) need no handle threaded through to them.
//!
//! Frames, one JSON object each (`event:` name, then `data:`):
//! - `snapshot`: `{devices, services, transfers}`, the whole state;
//! - `device`: one device row, as `GET /api/ztp/device/status/IP` returns it;
//! - `deleted`: `{ip}`;
//! - `log`: `{ip, at, kind, text}`, one line of a device's log;
//! - `progress`: the transfers in flight (every second while any are, and once after);
//! - `services`: as `GET /api/ztp/services`, when the generation or the last refused
//!   reload changes.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::clock::now_rfc3339;
use crate::files::Body;
use crate::http::Ctx;
use crate::status::{DeviceRow, Store};

/// Changes buffered per client before it counts as lagging (and gets a new snapshot).
const BACKLOG: usize = 1024;
/// Event-stream clients at once; more get 503 (each holds a task and a subscription).
pub const MAX_CLIENTS: usize = 64;
/// How often transfers and the generation are looked at.
const TICK: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies and idle timers from closing the stream.
const KEEPALIVE_TICKS: u32 = 15;

static HUB: LazyLock<broadcast::Sender<Bytes>> = LazyLock::new(|| broadcast::channel(BACKLOG).0);
static CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// One server-sent event. serde_json never writes a raw newline, so `data` is one line.
fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

fn publish(event: &str, data: &impl Serialize) {
    if HUB.receiver_count() > 0 {
        // An error only means the last listener left meanwhile.
        let _ = HUB.send(frame(event, data));
    }
}

#[derive(Serialize)]
struct LogLine<'a> {
    ip: &'a str,
    at: &'a str,
    kind: &'a str,
    text: &'a str,
}

/// A device row changed.
pub fn device(row: &DeviceRow) {
    publish("device", row);
}

/// A device report was recorded: its row, and its log line (as the store words it).
pub fn reported(row: &DeviceRow, task: &str, log: &str) {
    if HUB.receiver_count() == 0 {
        return;
    }
    device(row);
    let text = if log.is_empty() { task.to_string() } else { format!("{task}: {log}") };
    publish("log", &LogLine { ip: &row.ip_addr, at: &row.last_updated_at, kind: "report", text: &text });
}

/// A device and its log were deleted.
pub fn deleted(ip: &str) {
    publish("deleted", &serde_json::json!({ "ip": ip }));
}

/// A batch of server-side events was committed (called on the blocking pool by the
/// events writer): their log lines, and the rows that DHCP events create or touch.
pub fn recorded(store: &Store, events: &[crate::events::Event]) {
    if HUB.receiver_count() == 0 {
        return;
    }
    let at = now_rfc3339();
    let mut touched: Vec<&str> = Vec::new();
    for e in events {
        publish("log", &LogLine { ip: &e.ip, at: &at, kind: e.kind, text: &e.text });
        if e.kind == "dhcp" && !touched.contains(&e.ip.as_str()) {
            touched.push(&e.ip);
        }
    }
    for ip in touched {
        if let Ok(Some(row)) = store.device(ip) {
            device(&row);
        }
    }
}

/// `GET /api/ztp/services`'s body: the listeners, the generation, the last refusal.
pub fn services_json(ctx: &Ctx) -> serde_json::Value {
    let current = ctx.state.current();
    let refused = ctx.state.last_refusal();
    serde_json::json!({
        "services": ctx.services.list(),
        "generation": current.id,
        "fabric": current.manifest.fabric,
        "last_refused_reload": refused.map(|r| serde_json::json!({"at": r.at, "reason": r.reason})),
    })
}

/// `GET /api/events`: a `text/event-stream` that lasts until the client goes away.
pub fn stream(ctx: &Arc<Ctx>) -> Response<Body> {
    if CLIENTS.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
        let mut r = Response::new(
            http_body_util::Full::new(Bytes::from_static(b"too many event streams\n"))
                .map_err(|never| match never {})
                .boxed(),
        );
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    }
    let guard = ClientGuard;
    // Subscribe before the snapshot is read, so that no change falls between the two.
    let rx = HUB.subscribe();
    let (tx, out) = mpsc::channel::<Bytes>(16);
    tokio::spawn(feed(ctx.clone(), rx, tx, guard));
    let mut r = Response::new(Stream { rx: out }.boxed());
    let h = r.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    h.insert("cache-control", hyper::header::HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    r
}

/// Gives back the client's place when its feed ends.
struct ClientGuard;

impl Drop for ClientGuard {
    fn drop(&mut self) {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn snapshot(ctx: &Ctx) -> Option<Bytes> {
    let store = ctx.store.clone();
    let devices = tokio::task::spawn_blocking(move || store.devices()).await.ok()?.ok()?;
    Some(frame(
        "snapshot",
        &serde_json::json!({
            "devices": devices,
            "services": services_json(ctx),
            "transfers": crate::progress::snapshot(),
        }),
    ))
}

/// What identifies the services frame's content that can change after start-up.
fn services_key(ctx: &Ctx) -> (String, Option<String>, Vec<String>) {
    let refused = ctx.state.last_refusal().map(|r| format!("{}{}", r.at, r.reason));
    let states =
        ctx.services.list().into_iter().map(|s| format!("{}{}{}", s.name, s.address, s.state)).collect();
    (ctx.state.current().id.clone(), refused, states)
}

async fn feed(
    ctx: Arc<Ctx>,
    mut rx: broadcast::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    _guard: ClientGuard,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut want_snapshot, mut had_transfers, mut quiet) = (true, false, 0u32);
    let mut key = services_key(&ctx);
    loop {
        if want_snapshot {
            match snapshot(&ctx).await {
                Some(s) => {
                    if tx.send(s).await.is_err() {
                        return;
                    }
                    want_snapshot = false;
                }
                None => tracing::warn!("event stream: status store unavailable for a snapshot"),
            }
        }
        let out = tokio::select! {
            m = rx.recv() => match m {
                Ok(b) => Some(b),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event stream client lagged; sending a snapshot");
                    want_snapshot = true;
                    None
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                quiet += 1;
                let transfers = crate::progress::snapshot();
                let now_key = services_key(&ctx);
                if now_key != key {
                    key = now_key;
                    Some(frame("services", &services_json(&ctx)))
                } else if !transfers.is_empty() || had_transfers {
                    had_transfers = !transfers.is_empty();
                    Some(frame("progress", &transfers))
                } else if quiet >= KEEPALIVE_TICKS {
                    Some(Bytes::from_static(b": keepalive\n\n"))
                } else {
                    None
                }
            }
            _ = tx.closed() => return,
        };
        if let Some(b) = out {
            quiet = 0;
            if tx.send(b).await.is_err() {
                return;
            }
        }
    }
}

/// The response body: whatever the feed sends, until it stops.
struct Stream {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.get_mut().rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_each() {
        let f = frame("log", &LogLine { ip: "10.0.0.1", at: "t", kind: "report", text: "a\nb\r\nc" });
        let s = std::str::from_utf8(&f).unwrap();
        assert!(s.starts_with("event: log\ndata: {"));
        assert!(s.ends_with("}\n\n"));
        assert_eq!(s.matches('\n').count(), 3, "a newline in a field must not split the event: {s:?}");
    }
}
