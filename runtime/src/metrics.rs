//! `GET /metrics`: the runtime's counters in the Prometheus text exposition format 0.0.4.
//!
//! Written by hand rather than with `prometheus-client`: every label set here is fixed
//! and small (enums below), so the whole registry is one `static` of `AtomicU64`s built
//! by a `const fn`. Counting is a relaxed `fetch_add` at a fixed index, with no lock, no
//! allocation and no registration step; a histogram observation is a short bucket scan
//! and two `fetch_add`s. The renderer is a few `write!`s. A dependency would add
//! registration plumbing and dynamic label maps that buy nothing for fixed labels.
//!
//! What is counted where (one-line hooks):
//! - DHCP packets by type × outcome and the decision latency: `dhcp/server.rs`.
//! - Leases: the DHCP task owns its lease table, so it hands this module the journal
//!   records of each burst ([`leases_changed`]), which replays them into a mirror (one
//!   uncontended lock per burst, work proportional to the changes). A scrape counts the
//!   mirror's unexpired bound leases per pool of the current generation.
//! - TFTP transfers and bytes: `tftp.rs` (a transfer's end is its reader's drop).
//! - HTTP requests by class × status class, response body bytes (counted as hyper
//!   pulls them, so an aborted download counts what was produced) and the latency to
//!   the response head: `http.rs`.
//! - Reloads: `reload.rs`. Controller calls: `agent/client.rs` (every request).
//! - Computed at scrape time: devices by status (one `COUNT … GROUP BY` off the async
//!   workers), the current generation, events dropped by the event sink.

use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::dhcp::leases::{LeaseState, LeaseTable, Record};
use crate::files::Body;
use crate::state::State;
use crate::status::Store;

/// The content type of format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// Upper bounds of a histogram's buckets: nanoseconds, and the `le` label as written.
pub type Bounds = [(u64, &'static str)];

/// Bounds for DHCP decisions (decode, decide, table update): microseconds normally.
pub const DHCP_BOUNDS: [(u64, &str); 10] = [
    (10_000, "1e-05"),
    (25_000, "2.5e-05"),
    (50_000, "5e-05"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
];

/// Bounds for HTTP requests (to the response head): sub-millisecond for files in
/// memory, up to seconds for a status store under load.
pub const HTTP_BOUNDS: [(u64, &str); 12] = [
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (1_000_000_000, "1"),
    (5_000_000_000, "5"),
];

/// Fixed buckets of durations. Bucket counts are stored per bucket (not cumulative) and
/// `_count` is rendered as their total, so `le="+Inf"` always equals `_count`.
pub struct Histogram<const N: usize> {
    bounds: &'static [(u64, &'static str); N],
    buckets: [AtomicU64; N],
    over: AtomicU64,
    sum_ns: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: &'static [(u64, &'static str); N]) -> Histogram<N> {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = self.bounds.iter().position(|&(b, _)| ns <= b);
        match slot {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn since(&self, started: Instant) {
        self.observe(started.elapsed());
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    /// `name_bucket`, `name_sum` and `name_count` lines; `labels` is `k="v",` or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (i, (_, le)) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces =
            |s: &str| if s.is_empty() { String::new() } else { format!("{{{}}}", &s[..s.len() - 1]) };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// A fixed label set: an enum with an index and a label value per variant.
macro_rules! labels {
    ($(#[$m:meta])* $name:ident { $($v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub const N: usize = [$($s),+].len();
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
    };
}

labels!(
    /// The DHCP message type of a received packet.
    DhcpType { Discover = "discover", Request = "request", Release = "release", Decline = "decline",
        Inform = "inform", Other = "other" }
);
labels!(
    /// What became of a DHCP packet: the reply sent, `dropped` (could not be decoded as
    /// DHCP), or `ignored` (decoded, no reply: releases and declines, which never get
    /// one, and requests this server does not answer), or `rate_limited` (over the
    /// per-client rate, dropped undecoded: see dhcp/ratelimit.rs).
    DhcpOutcome { Offer = "offer", Ack = "ack", Nak = "nak", Dropped = "dropped", Ignored = "ignored",
        RateLimited = "rate_limited" }
);
labels!(
    /// Which part of the HTTP server answered.
    HttpClass { Files = "files", Api = "api", Healthz = "healthz", Metrics = "metrics" }
);
labels!(
    /// The class of an HTTP status code (1xx counts as 2xx: not sent as a final answer).
    StatusClass { S2xx = "2xx", S3xx = "3xx", S4xx = "4xx", S5xx = "5xx" }
);
labels!(
    /// The end of a TFTP transfer: every byte handed to the sender, or not.
    TftpEnd { Done = "done", Aborted = "aborted" }
);
labels!(
    /// A reload attempt: a new generation swapped in, refused, or the same one again.
    ReloadResult { Accepted = "accepted", Refused = "refused", Unchanged = "unchanged" }
);
labels!(
    /// A request to the controller: a success, a failure worth retrying (connection,
    /// timeout, 5xx, 429, 401: the agent module retries it while attempts remain), or
    /// a failure that is final.
    CallOutcome { Ok = "ok", Retry = "retry", Failed = "failed" }
);

labels!(
    /// A syslog datagram: filed in a device's log, from an address that is no device,
    /// or not parseable.
    SyslogResult { Filed = "filed", UnknownSource = "unknown_source", Malformed = "malformed" }
);

impl DhcpType {
    pub fn of(t: Option<dhcproto::v4::MessageType>) -> DhcpType {
        use dhcproto::v4::MessageType as M;
        match t {
            Some(M::Discover) => DhcpType::Discover,
            Some(M::Request) => DhcpType::Request,
            Some(M::Release) => DhcpType::Release,
            Some(M::Decline) => DhcpType::Decline,
            Some(M::Inform) => DhcpType::Inform,
            _ => DhcpType::Other,
        }
    }
}

impl DhcpOutcome {
    /// From the type of the reply, if any.
    pub fn of(reply: Option<dhcproto::v4::MessageType>) -> DhcpOutcome {
        use dhcproto::v4::MessageType as M;
        match reply {
            Some(M::Offer) => DhcpOutcome::Offer,
            Some(M::Ack) => DhcpOutcome::Ack,
            Some(M::Nak) => DhcpOutcome::Nak,
            _ => DhcpOutcome::Ignored,
        }
    }
}

impl HttpClass {
    pub fn of(path: &str) -> HttpClass {
        match path {
            "/metrics" => HttpClass::Metrics,
            "/healthz" => HttpClass::Healthz,
            p if p.starts_with("/api/ztp/") || p == "/api/events" => HttpClass::Api,
            _ => HttpClass::Files,
        }
    }
}

impl StatusClass {
    pub fn of(code: u16) -> StatusClass {
        match code {
            0..=299 => StatusClass::S2xx,
            300..=399 => StatusClass::S3xx,
            400..=499 => StatusClass::S4xx,
            _ => StatusClass::S5xx,
        }
    }
}

/// Every counter of the process.
pub struct Metrics {
    pub dhcp_packets: [[Counter; DhcpOutcome::N]; DhcpType::N],
    pub dhcp_decision: Histogram<{ DHCP_BOUNDS.len() }>,
    pub tftp_started: Counter,
    pub tftp_finished: [Counter; TftpEnd::N],
    pub tftp_bytes: Counter,
    pub http_requests: [[Counter; StatusClass::N]; HttpClass::N],
    pub http_bytes: [Counter; HttpClass::N],
    pub http_latency: [Histogram<{ HTTP_BOUNDS.len() }>; HttpClass::N],
    pub reloads: [Counter; ReloadResult::N],
    pub controller_calls: [Counter; CallOutcome::N],
    pub syslog_messages: [Counter; SyslogResult::N],
    /// The DHCP server's bound leases, replayed from its journal records; `None` when
    /// this process serves no DHCP.
    leases: Mutex<Option<LeaseTable>>,
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            dhcp_packets: [const { [const { Counter::new() }; DhcpOutcome::N] }; DhcpType::N],
            dhcp_decision: Histogram::new(&DHCP_BOUNDS),
            tftp_started: Counter::new(),
            tftp_finished: [const { Counter::new() }; TftpEnd::N],
            tftp_bytes: Counter::new(),
            http_requests: [const { [const { Counter::new() }; StatusClass::N] }; HttpClass::N],
            http_bytes: [const { Counter::new() }; HttpClass::N],
            http_latency: [const { Histogram::new(&HTTP_BOUNDS) }; HttpClass::N],
            reloads: [const { Counter::new() }; ReloadResult::N],
            controller_calls: [const { Counter::new() }; CallOutcome::N],
            syslog_messages: [const { Counter::new() }; SyslogResult::N],
            leases: Mutex::new(None),
        }
    }

    pub fn dhcp(&self, t: DhcpType, o: DhcpOutcome) {
        self.dhcp_packets[t as usize][o as usize].inc();
    }

    /// Start mirroring a DHCP server's table (replaces any previous mirror).
    pub fn leases_loaded(&self, table: &LeaseTable, now: u64) {
        let mut mirror = LeaseTable::default();
        for r in table.snapshot(now) {
            mirror.replay(&r);
        }
        *self.leases.lock().unwrap_or_else(|e| e.into_inner()) = Some(mirror);
    }

    pub fn leases_changed(&self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        if let Some(t) = self.leases.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            for r in records {
                t.replay(r);
            }
        }
    }

    /// Bound, unexpired leases in `first..=last` (None: no DHCP served here).
    pub fn leases_in_use(&self, pools: &[(Ipv4Addr, Ipv4Addr)], now: u64) -> Option<Vec<u64>> {
        let guard = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let t = guard.as_ref()?;
        let mut counts = vec![0u64; pools.len()];
        for l in t.iter().filter(|l| l.state == LeaseState::Bound && l.expires > now) {
            for (i, (f, last)) in pools.iter().enumerate() {
                if *f <= l.addr && l.addr <= *last {
                    counts[i] += 1;
                }
            }
        }
        Some(counts)
    }

    /// The whole exposition: these counters and the scrape-time values in `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;

        family(o, "ztp_dhcp_packets_total", "counter", "DHCP packets received, by message type and outcome.");
        for t in DhcpType::ALL {
            for oc in DhcpOutcome::ALL {
                let v = self.dhcp_packets[*t as usize][*oc as usize].get();
                let _ = writeln!(
                    o,
                    "ztp_dhcp_packets_total{{type=\"{}\",outcome=\"{}\"}} {v}",
                    t.label(),
                    oc.label()
                );
            }
        }
        family(
            o,
            "ztp_dhcp_decision_duration_seconds",
            "histogram",
            "Time to decode a DHCP packet, decide the answer and update the lease table (packets that decode).",
        );
        self.dhcp_decision.render(o, "ztp_dhcp_decision_duration_seconds", "");
        if let Some(pools) = &g.pools {
            family(o, "ztp_dhcp_leases_in_use", "gauge", "Bound, unexpired leases per pool.");
            for p in pools {
                let _ = writeln!(o, "ztp_dhcp_leases_in_use{{pool=\"{}\"}} {}", esc(&p.name), p.in_use);
            }
            family(o, "ztp_dhcp_pool_addresses", "gauge", "Addresses per pool.");
            for p in pools {
                let _ = writeln!(o, "ztp_dhcp_pool_addresses{{pool=\"{}\"}} {}", esc(&p.name), p.size);
            }
        }

        family(o, "ztp_tftp_transfers_started_total", "counter", "TFTP read transfers started.");
        let _ = writeln!(o, "ztp_tftp_transfers_started_total {}", self.tftp_started.get());
        family(
            o,
            "ztp_tftp_transfers_finished_total",
            "counter",
            "TFTP read transfers ended: done (every byte handed to the sender) or aborted.",
        );
        for e in TftpEnd::ALL {
            let v = self.tftp_finished[*e as usize].get();
            let _ = writeln!(o, "ztp_tftp_transfers_finished_total{{result=\"{}\"}} {v}", e.label());
        }
        family(o, "ztp_tftp_sent_bytes_total", "counter", "File bytes sent over TFTP.");
        let _ = writeln!(o, "ztp_tftp_sent_bytes_total {}", self.tftp_bytes.get());

        family(
            o,
            "ztp_http_requests_total",
            "counter",
            "HTTP requests answered, by handler and status class.",
        );
        for c in HttpClass::ALL {
            for s in StatusClass::ALL {
                let v = self.http_requests[*c as usize][*s as usize].get();
                let _ = writeln!(
                    o,
                    "ztp_http_requests_total{{class=\"{}\",code=\"{}\"}} {v}",
                    c.label(),
                    s.label()
                );
            }
        }
        family(
            o,
            "ztp_http_response_bytes_total",
            "counter",
            "HTTP response body bytes produced, by handler.",
        );
        for c in HttpClass::ALL {
            let v = self.http_bytes[*c as usize].get();
            let _ = writeln!(o, "ztp_http_response_bytes_total{{class=\"{}\"}} {v}", c.label());
        }
        family(
            o,
            "ztp_http_request_duration_seconds",
            "histogram",
            "Time from an HTTP request to its response head, by handler.",
        );
        for c in HttpClass::ALL {
            let labels = format!("class=\"{}\",", c.label());
            self.http_latency[*c as usize].render(o, "ztp_http_request_duration_seconds", &labels);
        }

        family(o, "ztp_reloads_total", "counter", "Reload attempts: accepted, refused or unchanged.");
        for r in ReloadResult::ALL {
            let _ = writeln!(
                o,
                "ztp_reloads_total{{result=\"{}\"}} {}",
                r.label(),
                self.reloads[*r as usize].get()
            );
        }
        family(o, "ztp_controller_calls_total", "counter", "Requests to the controller, by outcome.");
        for c in CallOutcome::ALL {
            let v = self.controller_calls[*c as usize].get();
            let _ = writeln!(o, "ztp_controller_calls_total{{outcome=\"{}\"}} {v}", c.label());
        }
        family(
            o,
            "ztp_syslog_messages_total",
            "counter",
            "Syslog messages received, by what became of them.",
        );
        for r in SyslogResult::ALL {
            let v = self.syslog_messages[*r as usize].get();
            let _ = writeln!(o, "ztp_syslog_messages_total{{result=\"{}\"}} {v}", r.label());
        }
        family(
            o,
            "ztp_events_dropped_total",
            "counter",
            "Device log events dropped because the writer lagged.",
        );
        let _ = writeln!(o, "ztp_events_dropped_total {}", g.events_dropped);

        if let Some(devices) = &g.devices {
            family(o, "ztp_devices", "gauge", "Devices in the status store, by ZTP status.");
            for s in ["completed", "failed", "in_progress", "unknown"] {
                if !devices.iter().any(|(d, _)| d == s) {
                    let _ = writeln!(o, "ztp_devices{{status=\"{s}\"}} 0");
                }
            }
            for (s, n) in devices {
                let _ = writeln!(o, "ztp_devices{{status=\"{}\"}} {n}", esc(s));
            }
        }
        if let Some((generation, fabric)) = &g.generation {
            family(o, "ztp_generation_info", "gauge", "The generation being served.");
            let _ = writeln!(
                o,
                "ztp_generation_info{{generation=\"{}\",fabric=\"{}\"}} 1",
                esc(generation),
                esc(fabric)
            );
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The process's registry.
pub static METRICS: Metrics = Metrics::new();

/// Values read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Status → device rows; `None` if the store could not be read.
    pub devices: Option<Vec<(String, u64)>>,
    /// `None` when no DHCP is served by this process.
    pub pools: Option<Vec<PoolGauge>>,
    pub generation: Option<(String, String)>,
    pub events_dropped: u64,
}

#[derive(Debug, Clone)]
pub struct PoolGauge {
    /// `first-last`.
    pub name: String,
    pub in_use: u64,
    pub size: u64,
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return s.into();
    }
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Read the scrape-time values and render everything.
pub async fn scrape(state: &State, store: std::sync::Arc<Store>) -> String {
    let devices = match tokio::task::spawn_blocking(move || store.count_by_status()).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot count devices");
            None
        }
        Err(_) => None,
    };
    let g = state.current();
    let ranges: Vec<(Ipv4Addr, Ipv4Addr)> =
        g.manifest.dhcp.subnets.iter().flat_map(|s| s.pools.iter().map(|p| (p.first, p.last))).collect();
    let pools = METRICS.leases_in_use(&ranges, unix_now()).map(|counts| {
        ranges
            .iter()
            .zip(counts)
            .map(|((f, l), in_use)| PoolGauge {
                name: format!("{f}-{l}"),
                in_use,
                size: u64::from(u32::from(*l).saturating_sub(u32::from(*f))) + 1,
            })
            .collect()
    });
    let gauges = Gauges {
        devices,
        pools,
        generation: Some((g.id.clone(), g.manifest.fabric.clone())),
        events_dropped: state.events_dropped(),
    };
    METRICS.render(&gauges)
}

/// Count a finished HTTP request and wrap its body so that its bytes are counted.
pub fn http_done(class: HttpClass, started: Instant, resp: hyper::Response<Body>) -> hyper::Response<Body> {
    METRICS.http_requests[class as usize][StatusClass::of(resp.status().as_u16()) as usize].inc();
    METRICS.http_latency[class as usize].since(started);
    resp.map(|inner| Counted { inner, class }.boxed())
}

/// A response body that counts the data it yields.
struct Counted {
    inner: Body,
    class: HttpClass,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            METRICS.http_bytes[this.class as usize].add(d.len() as u64);
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

/// Count a controller request by its result.
pub fn controller_call<T>(r: &Result<(hyper::StatusCode, T), crate::agent::client::CallError>) {
    let outcome = match r {
        Ok((s, _)) if s.is_success() || s.is_redirection() => CallOutcome::Ok,
        Ok((s, _)) => {
            let c = s.as_u16();
            if c >= 500 || c == 429 || c == 408 || c == 401 {
                CallOutcome::Retry
            } else {
                CallOutcome::Failed
            }
        }
        Err(e) if e.retryable() => CallOutcome::Retry,
        Err(_) => CallOutcome::Failed,
    };
    METRICS.controller_calls[outcome as usize].inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
    }

    #[test]
    fn counters_render_with_labels() {
        let m = Metrics::new();
        m.dhcp(DhcpType::Discover, DhcpOutcome::Offer);
        m.dhcp(DhcpType::Discover, DhcpOutcome::Offer);
        m.dhcp(DhcpType::Other, DhcpOutcome::Dropped);
        m.reloads[ReloadResult::Refused as usize].inc();
        m.tftp_bytes.add(1234);
        let text = m.render(&Gauges::default());
        assert_eq!(sample(&text, "ztp_dhcp_packets_total{type=\"discover\",outcome=\"offer\"}"), Some("2"));
        assert_eq!(sample(&text, "ztp_dhcp_packets_total{type=\"other\",outcome=\"dropped\"}"), Some("1"));
        assert_eq!(sample(&text, "ztp_dhcp_packets_total{type=\"inform\",outcome=\"nak\"}"), Some("0"));
        assert_eq!(sample(&text, "ztp_reloads_total{result=\"refused\"}"), Some("1"));
        assert_eq!(sample(&text, "ztp_tftp_sent_bytes_total"), Some("1234"));
        assert!(text.contains("# TYPE ztp_dhcp_packets_total counter\n"));
        assert!(text.contains("# HELP ztp_reloads_total "));
        // Every sample line follows its family's HELP and TYPE, and families are contiguous.
        let mut seen = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!seen.contains(&name.to_string()), "{name} twice");
                seen.push(name.to_string());
            } else if !l.starts_with('#') {
                let fam = seen.last().unwrap();
                assert!(l.starts_with(fam.as_str()), "{l} outside {fam}");
            }
        }
        // Scrape-time families are absent without values.
        assert!(!text.contains("ztp_devices"));
        assert!(!text.contains("ztp_dhcp_leases_in_use"));
    }

    #[test]
    fn histograms_are_cumulative_and_consistent() {
        let m = Metrics::new();
        m.dhcp_decision.observe(Duration::from_micros(5)); // first bucket
        m.dhcp_decision.observe(Duration::from_micros(10)); // on the bound: still first
        m.dhcp_decision.observe(Duration::from_micros(300)); // le 0.0005
        m.dhcp_decision.observe(Duration::from_secs(1)); // over every bound
        let text = m.render(&Gauges::default());
        let h = "ztp_dhcp_decision_duration_seconds";
        assert_eq!(sample(&text, &format!("{h}_bucket{{le=\"1e-05\"}}")), Some("2"));
        assert_eq!(sample(&text, &format!("{h}_bucket{{le=\"0.00025\"}}")), Some("2"));
        assert_eq!(sample(&text, &format!("{h}_bucket{{le=\"0.0005\"}}")), Some("3"));
        assert_eq!(sample(&text, &format!("{h}_bucket{{le=\"0.01\"}}")), Some("3"));
        assert_eq!(sample(&text, &format!("{h}_bucket{{le=\"+Inf\"}}")), Some("4"));
        assert_eq!(sample(&text, &format!("{h}_count")), Some("4"));
        assert_eq!(sample(&text, &format!("{h}_sum")), Some("1.000315"));
        assert_eq!(m.dhcp_decision.count(), 4);
        // The labelled form: class first, then le.
        m.http_latency[HttpClass::Api as usize].observe(Duration::from_millis(2));
        let text = m.render(&Gauges::default());
        let api = "ztp_http_request_duration_seconds";
        assert_eq!(sample(&text, &format!("{api}_bucket{{class=\"api\",le=\"0.001\"}}")), Some("0"));
        assert_eq!(sample(&text, &format!("{api}_bucket{{class=\"api\",le=\"0.0025\"}}")), Some("1"));
        assert_eq!(sample(&text, &format!("{api}_count{{class=\"api\"}}")), Some("1"));
        assert_eq!(sample(&text, &format!("{api}_sum{{class=\"api\"}}")), Some("0.002"));
        // The le labels are the bounds, written as floats, increasing.
        for b in [&DHCP_BOUNDS[..], &HTTP_BOUNDS[..]] {
            for w in b.windows(2) {
                assert!(w[0].0 < w[1].0);
            }
            for (ns, le) in b {
                assert_eq!(le.parse::<f64>().unwrap(), *ns as f64 / 1e9);
            }
        }
    }

    #[test]
    fn gauges_escape_label_values() {
        let m = Metrics::new();
        let g = Gauges {
            devices: Some(vec![("completed".into(), 3), ("odd\"one\\\n".into(), 1)]),
            pools: Some(vec![PoolGauge { name: "10.0.0.100-10.0.0.199".into(), in_use: 2, size: 100 }]),
            generation: Some(("g-1".into(), "lab \"x\"".into())),
            events_dropped: 7,
        };
        let text = m.render(&g);
        assert_eq!(sample(&text, "ztp_devices{status=\"completed\"}"), Some("3"));
        assert_eq!(sample(&text, "ztp_devices{status=\"failed\"}"), Some("0"));
        assert_eq!(sample(&text, "ztp_devices{status=\"odd\\\"one\\\\\\n\"}"), Some("1"));
        assert_eq!(sample(&text, "ztp_dhcp_leases_in_use{pool=\"10.0.0.100-10.0.0.199\"}"), Some("2"));
        assert_eq!(sample(&text, "ztp_dhcp_pool_addresses{pool=\"10.0.0.100-10.0.0.199\"}"), Some("100"));
        assert_eq!(
            sample(&text, "ztp_generation_info{generation=\"g-1\",fabric=\"lab \\\"x\\\"\"}"),
            Some("1")
        );
        assert_eq!(sample(&text, "ztp_events_dropped_total"), Some("7"));
        assert_eq!(text.lines().filter(|l| l.starts_with("ztp_devices{")).count(), 5);
    }

    #[test]
    fn lease_mirror_counts_bound_unexpired_per_pool() {
        use crate::dhcp::leases::{Change, ClientKey};
        let m = Metrics::new();
        let pools = [(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9))];
        assert_eq!(m.leases_in_use(&pools, 0), None, "no DHCP, no gauge");
        let mut t = LeaseTable::default();
        let mut recs = Vec::new();
        let key = |n: u8| {
            let mut msg = dhcproto::v4::Message::default();
            msg.set_chaddr(&[0, 0, 0, 0, 0, n]);
            ClientKey::of(&msg)
        };
        let a = |n: u8| Ipv4Addr::new(10, 0, 0, n);
        t.apply(Change::Bind { addr: a(1), client: key(1), at: 0, expires: 100 }, &mut recs);
        m.leases_loaded(&t, 0);
        assert_eq!(m.leases_in_use(&pools, 50), Some(vec![1]));
        recs.clear();
        t.apply(Change::Bind { addr: a(2), client: key(2), at: 0, expires: 200 }, &mut recs);
        t.apply(Change::Bind { addr: a(20), client: key(3), at: 0, expires: 200 }, &mut recs);
        t.apply(Change::Offer { addr: a(3), client: key(4), until: 200 }, &mut recs);
        t.apply(Change::Decline { addr: a(4), until: 200 }, &mut recs);
        m.leases_changed(&recs);
        assert_eq!(m.leases_in_use(&pools, 50), Some(vec![2]), "offers, declines and other pools excluded");
        assert_eq!(m.leases_in_use(&pools, 150), Some(vec![1]), "the first has expired");
        recs.clear();
        t.apply(Change::Release { addr: a(2), client: key(2), at: 60 }, &mut recs);
        m.leases_changed(&recs);
        assert_eq!(m.leases_in_use(&pools, 61), Some(vec![1]));
    }

    #[test]
    fn classes() {
        assert_eq!(HttpClass::of("/metrics"), HttpClass::Metrics);
        assert_eq!(HttpClass::of("/api/ztp/services"), HttpClass::Api);
        assert_eq!(HttpClass::of("/api/other"), HttpClass::Files);
        assert_eq!(StatusClass::of(404), StatusClass::S4xx);
        assert_eq!(StatusClass::of(206), StatusClass::S2xx);
        assert_eq!(StatusClass::of(503), StatusClass::S5xx);
        assert_eq!(DhcpOutcome::of(None), DhcpOutcome::Ignored);
    }
}
