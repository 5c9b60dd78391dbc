//! TFTP server over the current generation, read-only (RFC 1350; options RFC 2347-2349;
//! windowsize RFC 7440).
//!
//! One thread listens on the server port; each read request that passes the checks
//! below gets a thread of its own, with a UDP socket connected to the client, that
//! sends the file with blocking `send` and `recv` (a receive timeout is the retransmit
//! timer): two system calls per lockstep block and no hand-off between threads, the
//! way tftpd-hpa's process per transfer works. The first version ran async-tftp inside
//! a tokio task, and every block crossed from async-io's reactor thread to tokio and
//! back; bench/tftp measured it at 0.7-0.8x tftpd-hpa's rate in lockstep. Each request
//! resolves its name through [`paths::clean`] against the generation current at open,
//! and the transfer keeps that generation to its end. Dropping the [`serve`] future
//! stops the listener, and transfers in flight stop at their next window.
//!
//! Limits, and why:
//! - blksize up to 65464 (RFC 2348's maximum) and windowsize up to [`MAX_WINDOW`] and
//!   [`WINDOW_BYTES`] of data. Tree files held in memory are sent straight from the
//!   generation's bytes; tree files kept on disk and images are read a window (at least
//!   64 KiB) at a time, so one transfer holds at most one block plus 128 KiB.
//! - at most [`MAX_PER_CLIENT`] transfers per client address and [`MAX_TOTAL`] in all;
//!   over that, the request gets a TFTP error and the client retries. With the buffer
//!   bound this caps TFTP memory near [`MAX_TOTAL`] × 256 KiB even against a hostile
//!   client, while a boot storm of hundreds of devices is still served at once.
//! - [`MAX_RETRIES`] resends of an unacknowledged window, so a vanished client frees its
//!   slot after about half a minute at the default 3 s timeout.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
use tokio::sync::oneshot;

use crate::files::open_checked;
use crate::generation::{Data, Generation, Served};
use crate::metrics::{METRICS, TftpEnd};
use crate::paths;
use crate::state::State;
use crate::tftp_packet::{self as pkt, Opts, Reply, Request};

/// Largest block size granted (RFC 2348 maximum: fits a 65535-byte IPv4 datagram).
pub const MAX_BLKSIZE: u16 = 65464;
/// Largest window size granted (RFC 7440).
pub const MAX_WINDOW: u16 = 32;
/// Concurrent transfers allowed from one client IP address.
pub const MAX_PER_CLIENT: usize = 8;
/// Concurrent transfers allowed in total.
pub const MAX_TOTAL: usize = 256;
/// Resends of an unacknowledged window before the transfer is abandoned.
pub const MAX_RETRIES: u32 = 8;
/// Retransmit timeout unless the client asks for another (RFC 2349).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest window granted, in bytes of data: a window leaves in one burst, and a
/// client's default UDP receive buffer (208 KiB on Linux, where each datagram counts
/// about twice its size) drops the tail of anything larger, every window (bench/tftp
/// lost blocks 13-16 of each window at blksize 8192 × 16). The OACK grants
/// `min(asked, MAX_WINDOW, WINDOW_BYTES / blksize)`, at least 1.
pub const WINDOW_BYTES: usize = 64 * 1024;
/// How often the listener looks at its stop flag while no request comes in.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Transfer threads only run the loop below; a small stack keeps hundreds cheap.
const TRANSFER_STACK: usize = 128 * 1024;

/// Serve TFTP on `listen` until the future is dropped. `ready` receives the bound
/// address (the real port when `listen` has port 0) once requests can be answered.
pub async fn serve(
    state: Arc<State>,
    listen: SocketAddr,
    ready: oneshot::Sender<SocketAddr>,
) -> io::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    let addr = socket.local_addr()?;
    socket.set_read_timeout(Some(STOP_POLL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let listener = Listener {
        state,
        socket,
        stop: Arc::clone(&stop),
        slots: Arc::new(Mutex::new(Slots::default())),
        in_progress: Arc::new(Mutex::new(HashSet::new())),
        workers: Arc::new(Workers::default()),
    };
    let (done_tx, done) = oneshot::channel();
    std::thread::Builder::new().name("tftp".into()).spawn(move || {
        let _ = done_tx.send(listener.run());
    })?;
    // The receiver may have gone away (the caller gave up waiting); serving is still right.
    let _ = ready.send(addr);
    let _stop = StopOnDrop(stop);
    done.await.unwrap_or_else(|_| Err(io::Error::other("the TFTP listener thread ended")))
}

/// Sets the stop flag when the [`serve`] future is dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Listener {
    state: Arc<State>,
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
    slots: Arc<Mutex<Slots>>,
    /// Clients (address and port) whose request is being served: a resent request
    /// must not start a second transfer.
    in_progress: Arc<Mutex<HashSet<SocketAddr>>>,
    workers: Arc<Workers>,
}

impl Listener {
    fn run(self) -> io::Result<()> {
        // Requests are a few hundred bytes; a longer datagram is cut and fails to parse.
        let mut buf = [0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, peer)) => self.request(&buf[..n], peer),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Not expected on an unconnected UDP socket; do not spin on it.
                    tracing::warn!(error = %e, "tftp: receive failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }

    fn request(&self, p: &[u8], peer: SocketAddr) {
        // Not a request, or not a well-formed one: dropped, as async-tftp did.
        let Some(req) = pkt::parse_request(p) else { return };
        let Some(busy) = InProgress::take(&self.in_progress, peer) else { return };
        let local = self.socket.local_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if req.write {
            let shown: String = req.filename.chars().take(200).collect();
            tracing::warn!(%peer, path = ?shown, "tftp: write request refused (read-only server)");
            send_error(local, peer, pkt::ERR_ACCESS, "Permission denied");
            return;
        }
        let transfer = match self.open(&peer, &req.filename) {
            Ok(t) => t,
            Err((code, msg)) => {
                send_error(local, peer, code, &msg);
                return;
            }
        };
        let stop = Arc::clone(&self.stop);
        let spawned = self.workers.run(Box::new(move || {
            let _busy = busy;
            transfer.run(local, &req, &stop);
        }));
        if let Err(e) = spawned {
            // The transfer (and its slot) was dropped with the closure.
            tracing::warn!(%peer, error = %e, "tftp: cannot start a transfer thread");
            send_error(local, peer, pkt::ERR_NOT_DEFINED, "server busy, retry later");
        }
    }

    /// Resolve and check a read request: the transfer, or the error to send.
    fn open(&self, client: &SocketAddr, raw: &str) -> Result<Transfer, (u16, String)> {
        let clean = match paths::clean(raw) {
            Ok(c) => c,
            Err(e) => {
                let shown: String = raw.chars().take(200).collect();
                tracing::warn!(peer = %client, path = ?shown, reason = %e, "tftp: refused path");
                return Err((pkt::ERR_NOT_DEFINED, format!("refused: {e}")));
            }
        };
        let generation = self.state.current();
        let Some(served) = generation.get(&clean) else {
            tracing::debug!(peer = %client, path = %clean, generation = %generation.id, "tftp: not found");
            return Err((pkt::ERR_NOT_FOUND, "File not found".into()));
        };
        let Some(slot) = Slot::take(&self.slots, client.ip()) else {
            tracing::warn!(peer = %client, path = %clean, "tftp: too many transfers, refused");
            return Err((pkt::ERR_NOT_DEFINED, "server busy, retry later".into()));
        };
        let (source, size) = match served {
            Served::Tree(f) => match f.data() {
                Data::Memory(b) => (Source::Tree(b.clone()), f.len()),
                Data::Disk(file, size) => {
                    (Source::Disk { file: Arc::clone(file), buf: Vec::new(), at: 0 }, *size)
                }
            },
            Served::Image(i) => match open_checked(&i.path, i.size) {
                Ok(file) => (Source::Disk { file: Arc::new(file), buf: Vec::new(), at: 0 }, i.size),
                Err(e) => {
                    tracing::warn!(peer = %client, path = %clean, file = %i.path.display(), error = %e, "tftp: image not servable");
                    return Err((pkt::ERR_NOT_DEFINED, "file not available, retry later".into()));
                }
            },
        };
        tracing::debug!(peer = %client, path = %clean, size, generation = %generation.id, "tftp: transfer start");
        METRICS.tftp_started.inc();
        Ok(Transfer {
            source,
            sent: 0,
            size,
            done: false,
            peer: *client,
            path: clean,
            generation,
            state: self.state.clone(),
            started: Instant::now(),
            _slot: slot,
        })
    }
}

/// Send an ERROR from a fresh port (the client has no transfer port of ours yet).
fn send_error(local: IpAddr, peer: SocketAddr, code: u16, msg: &str) {
    if let Ok(s) = UdpSocket::bind(SocketAddr::new(local, 0)) {
        // Errors are never retransmitted (RFC 1350); a lost one ends in a client timeout.
        let _ = s.send_to(&pkt::error(code, msg), peer);
    }
}

/// One read transfer: the bytes, the generation they came from, and its slot.
struct Transfer {
    source: Source,
    /// Bytes the client acknowledged.
    sent: u64,
    size: u64,
    /// The client acknowledged the last block.
    done: bool,
    peer: SocketAddr,
    path: String,
    generation: Arc<Generation>,
    state: Arc<State>,
    started: Instant,
    _slot: Slot,
}

enum Source {
    /// The generation's bytes: blocks are copied from here straight into packets.
    Tree(Bytes),
    /// An image or a tree file kept on disk, read a window (at least 64 KiB) at a
    /// time; `buf` holds bytes from `at`.
    Disk { file: Arc<File>, buf: Vec<u8>, at: u64 },
}

impl Source {
    /// Bytes `off..off + len` of the file of `size` bytes (`off + len <= size`),
    /// reading up to `chunk` bytes at a time from disk (`len <= chunk`).
    fn bytes(&mut self, off: u64, len: usize, chunk: usize, size: u64) -> io::Result<&[u8]> {
        match self {
            Source::Tree(b) => Ok(&b[off as usize..off as usize + len]),
            Source::Disk { file, buf, at } => {
                let have = off >= *at && off + len as u64 <= *at + buf.len() as u64;
                if !have {
                    let n = (size.saturating_sub(off) as usize).min(chunk).max(len);
                    buf.resize(n, 0);
                    file.read_exact_at(buf, off).map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => {
                            io::Error::new(e.kind(), "file shrank while being served")
                        }
                        _ => e,
                    })?;
                    *at = off;
                }
                let from = (off - *at) as usize;
                Ok(&buf[from..from + len])
            }
        }
    }
}

/// Why a transfer ended early.
enum Stop {
    /// Tell the client (an ERROR packet) and log.
    Fail(String),
    /// The client ended it or the server is stopping: nothing to send.
    Quiet(String),
}

impl Transfer {
    fn run(mut self, local: IpAddr, req: &Request, stop: &AtomicBool) {
        let sock =
            match UdpSocket::bind(SocketAddr::new(local, 0)).and_then(|s| s.connect(self.peer).map(|()| s)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "tftp: cannot open a transfer socket");
                    return;
                }
            };
        if let Err(why) = self.send_all(&sock, &req.opts, stop) {
            let msg = match why {
                Stop::Fail(m) => {
                    let _ = sock.send(&pkt::error(pkt::ERR_NOT_DEFINED, &m));
                    m
                }
                Stop::Quiet(m) => m,
            };
            tracing::debug!(peer = %self.peer, path = %self.path, reason = %msg, "tftp: transfer stopped");
        }
    }

    /// Negotiate, then send every block and wait for each window's acknowledgement.
    fn send_all(&mut self, sock: &UdpSocket, asked: &Opts, stop: &AtomicBool) -> Result<(), Stop> {
        let io = |e: io::Error| Stop::Quiet(format!("socket: {e}"));
        let blksize = asked.blksize.map_or(512, |b| b.min(MAX_BLKSIZE)) as usize;
        let window =
            (asked.windowsize.map_or(1, |w| w.min(MAX_WINDOW)) as usize).min((WINDOW_BYTES / blksize).max(1));
        let granted = Opts {
            blksize: asked.blksize.map(|_| blksize as u16),
            timeout: asked.timeout,
            tsize: asked.tsize.map(|_| self.size),
            windowsize: asked.windowsize.map(|_| window as u16),
        };
        let timeout = asked.timeout.map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.into()));
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        // Whole windows, and at least 64 KiB of blocks per disk read.
        let chunk = (blksize * window).max((64 * 1024 / blksize).max(1) * blksize);
        let mut ack = [0u8; 516];
        if granted != Opts::default() {
            let oack = pkt::oack(&granted);
            exchange(sock, &mut ack, timeout, |s| s.send(&oack).map(|_| ()), 0, 1)?;
        }
        // Blocks are numbered from 1 (u64 here; the wire number wraps after 65535);
        // the last one is shorter than blksize, possibly empty.
        let blocks = self.size / blksize as u64 + 1;
        let mut base: u64 = 1;
        let mut packet = vec![0u8; 4 + blksize];
        let size = self.size;
        while base <= blocks {
            if stop.load(Ordering::Relaxed) {
                return Err(Stop::Quiet("server stopping".into()));
            }
            let count = (blocks - base + 1).min(window as u64);
            let off = (base - 1) * blksize as u64;
            let len = (self.size - off).min(count * blksize as u64) as usize;
            let source = &mut self.source;
            let send_window = |s: &UdpSocket| -> io::Result<()> {
                let data = source.bytes(off, len, chunk, size)?;
                send_blocks(s, data, base, count as usize, blksize, &mut packet)
            };
            let acked = exchange(sock, &mut ack, timeout, send_window, base, count)?;
            base += acked;
            self.sent = ((base - 1) * blksize as u64).min(self.size);
        }
        self.done = true;
        Ok(())
    }
}

/// Send `count` DATA blocks numbered from `first`, cut from `data` (the window's bytes;
/// the last block may be short or empty). A window goes out in one `sendmmsg`: the
/// kernel then wakes the client once per window rather than once per block, and with
/// the client on the same machine each wake-up was a context switch on the sender's
/// way out of `send` (perf: finish_task_switch under __send, half the server's time at
/// windowsize 16). One block (lockstep) is copied behind its header into `packet`.
fn send_blocks(
    sock: &UdpSocket,
    data: &[u8],
    first: u64,
    count: usize,
    blksize: usize,
    packet: &mut [u8],
) -> io::Result<()> {
    if count == 1 {
        pkt::data_head(packet, first as u16);
        packet[4..4 + data.len()].copy_from_slice(data);
        sock.send(&packet[..4 + data.len()])?;
        return Ok(());
    }
    let heads: Vec<[u8; 4]> = (0..count)
        .map(|i| {
            let mut h = [0u8; 4];
            pkt::data_head(&mut h, (first + i as u64) as u16);
            h
        })
        .collect();
    let iovs: Vec<[IoSlice<'_>; 2]> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let from = (i * blksize).min(data.len());
            let to = (from + blksize).min(data.len());
            [IoSlice::new(h), IoSlice::new(&data[from..to])]
        })
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = (0..count).map(|_| Default::default()).collect();
    let mut msgs: Vec<MMsgHdr<'_>> =
        iovs.iter().zip(controls.iter_mut()).map(|(iov, c)| MMsgHdr::new(iov, c)).collect();
    let mut done = 0;
    while done < count {
        match sendmmsg(sock, &mut msgs[done..], SendFlags::empty()) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")),
            Ok(n) => done += n,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Send (with `send`) and wait for an ACK of one of `count` blocks numbered from
/// `first` (0 for an OACK); resend on timeout. Returns how many were acknowledged.
fn exchange(
    sock: &UdpSocket,
    ack: &mut [u8],
    timeout: Duration,
    mut send: impl FnMut(&UdpSocket) -> io::Result<()>,
    first: u64,
    count: u64,
) -> Result<u64, Stop> {
    let mut early = false;
    for _ in 0..=MAX_RETRIES {
        send(sock).map_err(|e| Stop::Fail(format!("cannot send: {e}")))?;
        let deadline = Instant::now() + timeout;
        loop {
            match sock.recv(ack) {
                Ok(n) => match pkt::parse_reply(&ack[..n]) {
                    Reply::Ack(k) => {
                        // Which of the blocks sent this ACK names (wire numbers wrap).
                        let i = u64::from(k.wrapping_sub(first as u16));
                        if i < count {
                            return Ok(i + 1);
                        }
                        // The block before the window: in window mode the client says it
                        // has none of this window (RFC 7440 §4), so resend now, once.
                        // Otherwise an older block's ACK (a duplicate) is never answered
                        // with a resend (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1).
                        if count > 1 && !early && k == (first as u16).wrapping_sub(1) {
                            early = true;
                            break;
                        }
                    }
                    Reply::Error(code) => return Err(Stop::Quiet(format!("client sent error {code}"))),
                    Reply::Other => {}
                },
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ECONNREFUSED: the client's port is closed; it has gone.
                Err(e) => return Err(Stop::Quiet(format!("client gone: {e}"))),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    Err(Stop::Fail("timed out waiting for an acknowledgement".into()))
}

impl Drop for Transfer {
    /// The one place a transfer's end is observed, however it ended. "done" means the
    /// client acknowledged the last block.
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let (peer, path, id) = (&self.peer, &self.path, &self.generation.id);
        let done = self.done;
        METRICS.tftp_bytes.add(self.sent);
        METRICS.tftp_finished[if done { TftpEnd::Done } else { TftpEnd::Aborted } as usize].inc();
        if done {
            tracing::info!(%peer, %path, bytes = self.sent, ms, generation = %id, "tftp: transfer done");
        } else {
            tracing::info!(%peer, %path, bytes = self.sent, size = self.size, ms, generation = %id, "tftp: transfer aborted");
        }
        self.state.event(crate::events::Event {
            ip: peer.ip().to_string(),
            kind: "tftp",
            text: format!("{path}: {} bytes, {}", self.sent, if done { "done" } else { "aborted" }),
            name: None,
            mac: None,
        });
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Transfer threads, kept for [`WORKER_IDLE`] after a transfer to take the next one: a
/// thread started per request waited for the scheduler before its first packet, about
/// 2 ms per transfer on a busy machine (bench/tftp: 150 transfers of a 1 MiB script in a
/// row at blksize 1468 were 11 % slower than tftpd-hpa's fork per request).
#[derive(Default)]
struct Workers {
    /// Idle threads: an id and the channel each waits on.
    idle: Mutex<Vec<(u64, mpsc::Sender<Job>)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// How long a transfer thread waits for another transfer before it ends.
const WORKER_IDLE: Duration = Duration::from_secs(30);

impl Workers {
    /// Run `job` on an idle thread, or on a new one.
    fn run(self: &Arc<Self>, mut job: Job) -> io::Result<()> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some((_, tx)) = idle else { break };
            match tx.send(job) {
                Ok(()) => return Ok(()),
                // That thread has ended (it cannot while listed; be safe anyway).
                Err(mpsc::SendError(j)) => job = j,
            }
        }
        let me = Arc::clone(self);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("tftp-transfer".into())
            .stack_size(TRANSFER_STACK)
            .spawn(move || me.work(id, job))
            .map(|_| ())
    }

    fn work(&self, id: u64, first: Job) {
        let (tx, rx) = mpsc::channel::<Job>();
        let mut job = first;
        loop {
            job();
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push((id, tx.clone()));
            job = match rx.recv_timeout(WORKER_IDLE) {
                Ok(j) => j,
                Err(_) => {
                    let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                    match idle.iter().position(|(i, _)| *i == id) {
                        // Still listed: nobody can hand this thread a job any more.
                        Some(k) => {
                            idle.swap_remove(k);
                            return;
                        }
                        // Taken off the list just now: its job is on the way.
                        None => {
                            drop(idle);
                            match rx.recv() {
                                Ok(j) => j,
                                Err(_) => return,
                            }
                        }
                    }
                }
            };
        }
    }
}

/// A client's place in the in-progress set, given back on drop.
struct InProgress {
    set: Arc<Mutex<HashSet<SocketAddr>>>,
    peer: SocketAddr,
}

impl InProgress {
    fn take(set: &Arc<Mutex<HashSet<SocketAddr>>>, peer: SocketAddr) -> Option<InProgress> {
        let mut s = set.lock().unwrap_or_else(|p| p.into_inner());
        s.insert(peer).then(|| InProgress { set: Arc::clone(set), peer })
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.peer);
    }
}

/// Counts of transfers in flight, for the limits above.
#[derive(Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A place among the transfers in flight, given back on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    ip: IpAddr,
}

impl Slot {
    fn take(slots: &Arc<Mutex<Slots>>, ip: IpAddr) -> Option<Slot> {
        // A panic while holding this lock cannot leave the counts half-updated, so a
        // poisoned lock is still good to use.
        let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
        let mine = s.per_ip.get(&ip).copied().unwrap_or(0);
        if s.total >= MAX_TOTAL || mine >= MAX_PER_CLIENT {
            return None;
        }
        s.total += 1;
        s.per_ip.insert(ip, mine + 1);
        Some(Slot { slots: Arc::clone(slots), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<Slot> = (0..MAX_PER_CLIENT).map(|_| Slot::take(&slots, a).unwrap()).collect();
        assert!(Slot::take(&slots, a).is_none(), "per-client cap");
        drop(held);
        let mut all = Vec::new();
        for i in 0..MAX_TOTAL {
            let ip: IpAddr = format!("10.0.1.{}", i % 250).parse().unwrap();
            all.push(Slot::take(&slots, ip).unwrap());
        }
        assert!(Slot::take(&slots, "10.9.9.9".parse().unwrap()).is_none(), "total cap");
        drop(all);
        let s = slots.lock().unwrap();
        assert_eq!((s.total, s.per_ip.len()), (0, 0));
    }
}
