//! Downloads in flight (TFTP and HTTP), for the web page's progress cell: who fetches
//! what, how many bytes of how many so far, and since when.
//!
//! The file servers hold a [`Tracker`] per transfer and call [`Tracker::add`] as bytes
//! leave (one relaxed atomic add); the registry lock is taken only when a transfer
//! starts or ends, and only for files of at least [`MIN_TRACKED`] bytes, so small tree
//! files (scripts, configs) cost nothing. The registry is process-wide, like the
//! counters in `metrics`, and bounded by [`MAX_TRACKED`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use serde::Serialize;

use crate::files::Body;

/// Smaller files finish too fast for a progress bar to mean anything.
pub const MIN_TRACKED: u64 = 256 * 1024;
/// Transfers shown at most; past this a transfer is served but not tracked.
pub const MAX_TRACKED: usize = 1024;

struct Entry {
    ip: IpAddr,
    proto: &'static str,
    path: String,
    total: u64,
    sent: AtomicU64,
    started: Instant,
}

static REGISTRY: Mutex<BTreeMap<u64, Arc<Entry>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// One transfer's place in the registry; dropping it removes the entry.
pub struct Tracker {
    slot: Option<(u64, Arc<Entry>)>,
}

impl Tracker {
    /// Track a transfer of `total` bytes of `path` to `ip` (inert below the size limit
    /// or when the registry is full).
    pub fn start(ip: IpAddr, proto: &'static str, path: &str, total: u64) -> Tracker {
        if total < MIN_TRACKED {
            return Tracker { slot: None };
        }
        let Ok(mut reg) = REGISTRY.lock() else { return Tracker { slot: None } };
        if reg.len() >= MAX_TRACKED {
            return Tracker { slot: None };
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let path: String = path.chars().take(200).collect();
        let e = Arc::new(Entry { ip, proto, path, total, sent: AtomicU64::new(0), started: Instant::now() });
        reg.insert(id, e.clone());
        Tracker { slot: Some((id, e)) }
    }

    /// `n` more bytes handed to the client.
    pub fn add(&self, n: usize) {
        if let Some((_, e)) = &self.slot {
            e.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some((id, _)) = self.slot.take()
            && let Ok(mut reg) = REGISTRY.lock()
        {
            reg.remove(&id);
        }
    }
}

/// One transfer as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transfer {
    pub ip: String,
    pub proto: &'static str,
    pub path: String,
    pub bytes: u64,
    pub total: u64,
    pub elapsed_ms: u64,
    /// Average rate since the start, bytes per second (0 until the first 100 ms).
    pub rate: u64,
    /// Seconds left at that rate; none while the rate is unknown.
    pub eta_s: Option<u64>,
}

/// Every tracked transfer, oldest first.
pub fn snapshot() -> Vec<Transfer> {
    let Ok(reg) = REGISTRY.lock() else { return Vec::new() };
    reg.values()
        .map(|e| {
            let bytes = e.sent.load(Ordering::Relaxed).min(e.total);
            let elapsed_ms = e.started.elapsed().as_millis() as u64;
            let rate = if elapsed_ms >= 100 { bytes.saturating_mul(1000) / elapsed_ms } else { 0 };
            let eta_s = (rate > 0).then(|| (e.total - bytes).div_ceil(rate));
            Transfer {
                ip: e.ip.to_string(),
                proto: e.proto,
                path: e.path.clone(),
                bytes,
                total: e.total,
                elapsed_ms,
                rate,
                eta_s,
            }
        })
        .collect()
}

/// Wrap a file response so that its body's progress is tracked (GET 200/206 of a large
/// file; anything else is returned as it is).
pub fn http(
    ip: IpAddr,
    path: &str,
    method: &hyper::Method,
    resp: hyper::Response<Body>,
) -> hyper::Response<Body> {
    let len = resp.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let ok = matches!(resp.status().as_u16(), 200 | 206) && method == hyper::Method::GET;
    match len {
        Some(total) if ok && total >= MIN_TRACKED => {
            let tracker = Tracker::start(ip, "http", path, total);
            resp.map(|inner| Tracked { inner, tracker }.boxed())
        }
        _ => resp,
    }
}

/// A response body that reports its data frames to a [`Tracker`].
struct Tracked {
    inner: Body,
    tracker: Tracker,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            this.tracker.add(d.len());
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide registry, so that parallel tests cannot see
    // each other's entries.
    #[test]
    fn tracks_large_transfers_until_dropped() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        let mine = || snapshot().into_iter().filter(|t| t.ip == "192.0.2.77").collect::<Vec<_>>();
        let small = Tracker::start(ip, "tftp", "ztp.json", MIN_TRACKED - 1);
        small.add(10);
        assert!(mine().is_empty(), "small files are not tracked");
        let t = Tracker::start(ip, "tftp", "images/big.bin", 4 * MIN_TRACKED);
        t.add(1000);
        t.add(24);
        let s = mine();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].bytes, s[0].total, s[0].proto, s[0].path.as_str()),
            (1024, 4 * MIN_TRACKED, "tftp", "images/big.bin")
        );
        // More than the total (a resend counted twice) never shows as over 100 %.
        t.add(usize::try_from(8 * MIN_TRACKED).unwrap());
        assert_eq!(mine()[0].bytes, 4 * MIN_TRACKED);
        assert_eq!(mine()[0].eta_s.unwrap_or(0), 0);
        drop(t);
        assert!(mine().is_empty(), "a finished transfer leaves the registry");
    }
}
