//! The DHCP socket: receive, decide with [`reply`](crate::dhcp::reply::reply), and send
//! per RFC 2131 §4.1, with pool leases committed in batches before their ACKs leave.
//!
//! A task and a thread. The receive loop owns the lease table: it answers each packet at
//! once (OFFER, NAK, INFORM and reserved-address ACKs need nothing on disk) and queues
//! the ACKs of pool leases with their journal records. After each burst (whatever the
//! socket already holds, up to [`MAX_BURST`]) it hands the queue to the journal's writer
//! thread ([`journal::spawn_writer`]), which appends all queued records with one
//! fdatasync and only then sends those ACKs. The
//! receive loop goes on meanwhile, so a sync never stalls the socket, and under load
//! one sync covers many ACKs. The table is updated when the decision is made, so a
//! lease waiting for its sync is already taken for every later packet.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dhcproto::v4::MessageType;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::dhcp::config::Config;
use crate::dhcp::journal::{self, Batch, Job};
use crate::dhcp::leases::LeaseTable;
use crate::dhcp::reply::{self, Decision, Request};
use crate::dhcp::{addressing, ratelimit, wire};
use crate::events::{Event, Sink};
use crate::generation::Shared;
use crate::metrics::{DhcpOutcome, DhcpType, METRICS};
use crate::state::State;

/// Packets taken from the socket before the queued ACKs are handed over for a sync.
pub const MAX_BURST: usize = 256;
/// Journal lines after which the journal is rewritten (when also 4× the live leases).
const COMPACT_AFTER: u64 = 50_000;
/// Commit jobs waiting at most; past that the receive loop waits for the disk.
const QUEUE: usize = 64;

/// Serve DHCP on `listen` until the socket fails. Pool leases are kept in
/// `state_dir`/dhcp-leases.log. `ready` gets the bound address once packets are accepted.
pub async fn serve(
    state: Arc<State>,
    listen: SocketAddr,
    state_dir: &Path,
    ready: oneshot::Sender<SocketAddr>,
) -> io::Result<()> {
    serve_with_events(state, listen, state_dir, ready, None, None).await
}

/// [`serve`], also reporting each exchange that names an address (offer, ack, nak,
/// release, decline) to the device event log. Events never make a packet wait: the
/// sink drops what it cannot take.
pub async fn serve_with_events(
    state: Arc<State>,
    listen: SocketAddr,
    state_dir: &Path,
    ready: oneshot::Sender<SocketAddr>,
    events: Option<Sink>,
    interface: Option<&str>,
) -> io::Result<()> {
    let dir = state_dir.to_path_buf();
    let now = unix_now();
    let (table, journal, seen) =
        tokio::task::spawn_blocking(move || journal::open(&dir, now)).await.map_err(io::Error::other)??;
    tracing::info!(leases = table.len(), records = seen.records, torn = seen.skipped, "DHCP leases loaded");
    METRICS.leases_loaded(&table, now);
    let sock = Arc::new(socket(listen, interface)?);
    let bound = sock.local_addr()?;
    let (tx, rx) = mpsc::channel(QUEUE);
    journal::spawn_writer(journal, rx, std::net::UdpSocket::from(sock.as_fd().try_clone_to_owned()?))?;
    let local = match bound.ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let _ = ready.send(bound);
    let out = Vec::with_capacity(1024);
    let limit = ratelimit::RateLimit::default();
    let mut l = Loop { state, sock, local, table, cached: None, tx, out, appended: 0, events, limit };
    l.run().await
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct Loop {
    state: Arc<State>,
    sock: Arc<UdpSocket>,
    /// The listening address; unspecified when listening on all addresses.
    local: Ipv4Addr,
    table: LeaseTable,
    /// The DHCP view of the generation last seen, rebuilt when a reload swaps it.
    cached: Option<(Shared, Arc<Config>)>,
    tx: mpsc::Sender<Job>,
    out: Vec<u8>,
    appended: u64,
    events: Option<Sink>,
    /// Per-client packet rate, checked before decoding.
    limit: ratelimit::RateLimit,
}

impl Loop {
    async fn run(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 4096];
        let mut batch = Batch::default();
        loop {
            match self.sock.recv_from(&mut buf).await {
                Ok((n, from)) => self.handle(&buf[..n], from, &mut batch).await,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems.
                    tracing::debug!(error = %e, "DHCP receive error");
                    continue;
                }
            }
            for _ in 1..MAX_BURST {
                match self.sock.try_recv_from(&mut buf) {
                    Ok((n, from)) => self.handle(&buf[..n], from, &mut batch).await,
                    Err(_) => break,
                }
            }
            if !batch.records.is_empty() || !batch.replies.is_empty() {
                self.appended += batch.records.len() as u64;
                METRICS.leases_changed(&batch.records);
                self.submit(Job::Batch(std::mem::take(&mut batch))).await?;
            }
            if self.appended > COMPACT_AFTER.max(4 * self.table.len() as u64) {
                self.appended = 0;
                let snap = self.table.snapshot(unix_now());
                self.submit(Job::Compact(snap)).await?;
            }
        }
    }

    async fn submit(&self, job: Job) -> io::Result<()> {
        self.tx.send(job).await.map_err(|_| io::Error::other("the DHCP lease journal task has stopped"))
    }

    fn config(&mut self) -> Arc<Config> {
        let g = self.state.current();
        match &self.cached {
            Some((have, cfg)) if Arc::ptr_eq(have, &g) => cfg.clone(),
            _ => {
                let cfg = Arc::new(Config::new(&g.manifest, &g.id));
                self.cached = Some((g, cfg.clone()));
                cfg
            }
        }
    }

    async fn handle(&mut self, pkt: &[u8], from: SocketAddr, batch: &mut Batch) {
        let started = Instant::now();
        if !self.limit.allow(pkt, started) {
            METRICS.dhcp(DhcpType::Other, DhcpOutcome::RateLimited);
            tracing::debug!(%from, len = pkt.len(), "DHCP packet dropped: client over its packet rate");
            return;
        }
        let msg = match wire::decode(pkt) {
            Ok(m) => m,
            Err(e) => {
                METRICS.dhcp(DhcpType::Other, DhcpOutcome::Dropped);
                tracing::debug!(%from, reason = %e, len = pkt.len(), "DHCP packet dropped");
                return;
            }
        };
        let cfg = self.config();
        let local = if self.local.is_unspecified() { cfg.server_id } else { self.local };
        let req = Request { msg, local };
        let d = reply::reply(&cfg, &self.table, &req, unix_now());
        self.table.apply(d.change, &mut batch.records);
        METRICS.dhcp(DhcpType::of(req.msg.opts().msg_type()), DhcpOutcome::of(d.kind()));
        METRICS.dhcp_decision.since(started);
        log(&cfg, &req, &d, from);
        if let Some(sink) = &self.events {
            emit(sink, &cfg, &req, &d);
        }
        let (Some(m), Some(kind)) = (&d.reply, d.kind()) else { return };
        let dest = addressing::destination(&req.msg, kind);
        let fallback = addressing::directed_broadcast(m);
        if d.must_persist() {
            let mut bytes = Vec::with_capacity(400);
            match wire::encode(m, &mut bytes) {
                Ok(()) => batch.replies.push((bytes, dest, fallback)),
                Err(e) => tracing::warn!(error = %e, "DHCP reply could not be encoded"),
            }
            return;
        }
        if let Err(e) = wire::encode(m, &mut self.out) {
            tracing::warn!(error = %e, "DHCP reply could not be encoded");
            return;
        }
        send(&self.sock, &self.out, dest, fallback).await;
    }
}

/// One line per exchange: debug, an ACK at info, a decline at warn.
fn log(cfg: &Config, req: &Request, d: &Decision, from: SocketAddr) {
    let m = &req.msg;
    let mac = Hex(m.chaddr());
    let request = m.opts().msg_type().map(name).unwrap_or("?");
    let reply = d.kind().map(name).unwrap_or("none");
    let platform = d.platform.map(|p| p.name()).unwrap_or("-");
    let device = d.device.and_then(|i| cfg.devices.get(i)).map(|x| x.name.as_str()).unwrap_or("-");
    let addr = OrDash(d.addr);
    let via = m.giaddr();
    let generation = cfg.generation.as_str();
    if d.notable {
        tracing::warn!(%mac, request, reply, platform, device, %addr, %via, %from, generation, "DHCP {}", d.why);
    } else if d.kind() == Some(MessageType::Ack) {
        tracing::info!(%mac, request, reply, platform, device, %addr, %via, %from, generation, "DHCP {}", d.why);
    } else {
        tracing::debug!(%mac, request, reply, platform, device, %addr, %via, %from, generation, "DHCP {}", d.why);
    }
}

/// The device log entry for an exchange that names an address.
fn emit(sink: &Sink, cfg: &Config, req: &Request, d: &Decision) {
    let Some((addr, text)) = event_text(req, d) else { return };
    sink.emit(Event {
        ip: addr.to_string(),
        kind: "dhcp",
        text,
        name: d.device.and_then(|i| cfg.devices.get(i)).map(|x| x.name.clone()),
        mac: Some(Hex(req.msg.chaddr()).to_string()),
    });
}

/// E.g. `discover → offer 10.0.0.5`, `request → nak 10.0.0.5 (why)`, `release
/// 10.0.0.5: released`.
fn event_text(req: &Request, d: &Decision) -> Option<(Ipv4Addr, String)> {
    let addr = d.addr?;
    let request = req.msg.opts().msg_type().map(name).unwrap_or("?").to_lowercase();
    let text = match d.kind() {
        Some(MessageType::Nak) => format!("{request} → nak {addr} ({})", d.why),
        Some(k) => format!("{request} → {} {addr}", name(k).to_lowercase()),
        None => format!("{request} {addr}: {}", d.why),
    };
    Some((addr, text))
}

fn name(t: MessageType) -> &'static str {
    match t {
        MessageType::Discover => "DISCOVER",
        MessageType::Offer => "OFFER",
        MessageType::Request => "REQUEST",
        MessageType::Decline => "DECLINE",
        MessageType::Ack => "ACK",
        MessageType::Nak => "NAK",
        MessageType::Release => "RELEASE",
        MessageType::Inform => "INFORM",
        _ => "other",
    }
}

/// A hardware address as colon-separated hex, formatted only if the line is logged.
struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An optional address, `-` when absent, formatted only if the line is logged.
struct OrDash(Option<Ipv4Addr>);

impl std::fmt::Display for OrDash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

/// The DHCP socket: broadcast allowed, a large receive buffer (bursts of DISCOVERs
/// overflowed the default one under perfdhcp), and, with `--dhcp-interface`, bound to
/// that device so that limited broadcasts leave through it even on a multi-homed host
/// or one without a default route.
fn socket(listen: SocketAddr, interface: Option<&str>) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(listen), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    recv_buffer(&s, RECV_BUFFER);
    if let Some(dev) = interface {
        s.bind_device(Some(dev.as_bytes()))?;
    }
    s.bind(&listen.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The DHCP socket's receive buffer: room for a few thousand queued requests (a boot
/// storm's DISCOVERs arrive together, and a dropped one costs the client seconds).
pub const RECV_BUFFER: usize = 4 << 20;

/// Ask for a `bytes` receive buffer. SO_RCVBUF is capped at net.core.rmem_max (208 KiB
/// by default: a few hundred requests); SO_RCVBUFFORCE, allowed with CAP_NET_ADMIN (a
/// server on port 67 usually runs as root), is not. Best effort either way.
fn recv_buffer(s: &socket2::Socket, bytes: usize) {
    if let Err(e) = rustix::net::sockopt::set_socket_recv_buffer_size_force(s, bytes) {
        tracing::debug!(error = %e, "SO_RCVBUFFORCE refused; SO_RCVBUF, capped at net.core.rmem_max");
        let _ = s.set_recv_buffer_size(bytes);
    }
}

/// Send a reply. A limited broadcast fails with "network unreachable" when the host has
/// no route for it (no default route, no bound interface); the subnet's directed
/// broadcast then reaches the same segment, and clients in INIT state read it from
/// their raw sockets alike.
async fn send(sock: &UdpSocket, bytes: &[u8], dest: SocketAddr, fallback: Option<SocketAddr>) {
    match sock.send_to(bytes, dest).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NetworkUnreachable && fallback.is_some() => {
            let Some(alt) = fallback else { return };
            if let Err(e) = sock.send_to(bytes, alt).await {
                tracing::debug!(%dest, %alt, error = %e, "DHCP reply not sent");
            }
        }
        Err(e) => tracing::debug!(%dest, error = %e, "DHCP reply not sent"),
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::v4::{self, DhcpOption};

    use super::*;
    use crate::dhcp::leases::Change;

    /// As root the buffer is what was asked for even past net.core.rmem_max (Linux
    /// reports twice the size set, its bookkeeping overhead included).
    #[test]
    fn as_root_the_receive_buffer_goes_past_rmem_max() {
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .expect("/proc/sys/net/core/rmem_max");
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        let want = 2 * rmem_max;
        recv_buffer(&s, want);
        let got = s.recv_buffer_size().unwrap();
        if !rustix::process::geteuid().is_root() {
            if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
                panic!("ZTP_REQUIRE_ORACLES=1 but SO_RCVBUFFORCE needs root");
            }
            assert!(got <= 2 * rmem_max, "without root the cap holds: {got}");
            eprintln!("SKIPPED: SO_RCVBUFFORCE needs root");
            return;
        }
        assert_eq!(got, 2 * want, "rmem_max {rmem_max}");
    }

    #[test]
    fn events_name_the_exchange_and_address() {
        let mut msg = v4::Message::default();
        msg.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
        let req = Request { msg, local: Ipv4Addr::UNSPECIFIED };
        let mut reply = v4::Message::default();
        reply.opts_mut().insert(DhcpOption::MessageType(MessageType::Offer));
        let a = Ipv4Addr::new(10, 0, 0, 5);
        let mut d = Decision {
            reply: Some(reply),
            why: "offer",
            notable: false,
            change: Change::None,
            platform: None,
            device: None,
            addr: Some(a),
        };
        assert_eq!(event_text(&req, &d), Some((a, "discover → offer 10.0.0.5".into())));
        d.reply = None;
        d.why = "no free address";
        assert_eq!(event_text(&req, &d), Some((a, "discover 10.0.0.5: no free address".into())));
        d.addr = None;
        assert_eq!(event_text(&req, &d), None);
    }
}
