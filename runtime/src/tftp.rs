//! TFTP server over the current generation (async-tftp), read-only.
//!
//! async-tftp runs its own smol executor on a thread of its own (see [`serve`]); it has
//! no shutdown call, so dropping the future [`serve`] returns ends that thread. Each read
//! request resolves its name through [`paths::clean`] against the generation current at
//! open, and the transfer keeps that generation to its end. async-tftp is patched in
//! `vendor/async-tftp` (see its `README.ztp.md`) for the window byte cap below and for
//! transfers on threads of their own with blocking sends and receives (see [`serve`]).
//!
//! Limits, and why:
//! - blksize up to 65464 (RFC 2348's maximum) and windowsize up to [`MAX_WINDOW`] blocks
//!   and [`MAX_WINDOW_BYTES`] of data (the OACK grants the smaller window): the server
//!   holds one window per transfer and reads the next one ahead while the ACK travels,
//!   plus a 64 KiB disk read buffer for files on disk, so this bounds its memory at about
//!   200 KiB per transfer, and a burst never overflows a client's default receive buffer.
//! - at most [`MAX_PER_CLIENT`] transfers per client address and [`MAX_TOTAL`] in all.
//!   Over the per-client cap the request gets a TFTP error at once. Over the total, it
//!   waits in line up to [`SLOT_WAIT`] for a transfer to end (the client resends its
//!   request meanwhile; async-tftp ignores the copies) and only then gets the error: in
//!   a boot storm the slots turn over within seconds, and a Junos switch stops ZTP at
//!   its first failed download. With the window bound this caps TFTP memory at about
//!   64 × 200 KiB even against a hostile client.
//! - [`MAX_RETRIES`] resends of an unacknowledged window, so a vanished client frees its
//!   slot after about half a minute at the default 3 s timeout (async-tftp's default of
//!   100 would hold it for five minutes).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_tftp::packet;
use async_tftp::server::{Handler, TftpServerBuilder};
use bytes::Bytes;
use futures_lite::AsyncRead;
use futures_lite::io::{Cursor, Sink};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::files::open_image;
use crate::generation::{Data, Generation, Served, ServedFile};
use crate::metrics::{METRICS, TftpEnd};
use crate::paths;
use crate::state::State;

/// Largest block size granted (RFC 2348 maximum: fits a 65535-byte IPv4 datagram).
pub const MAX_BLKSIZE: u16 = 65464;
/// Largest window size granted (RFC 7440).
pub const MAX_WINDOW: u16 = 32;
/// Most data bytes in one window, on top of [`MAX_WINDOW`] blocks (async-tftp's
/// `window_bytes_limit`, a local patch: vendor/async-tftp/README.ztp.md). A window goes
/// out as one burst, and a burst larger than the client's UDP receive buffer (208 KiB by
/// default on Linux, where an 8 KiB datagram takes 16 KiB of it) loses its tail, each
/// loss costing a timeout. So windowsize 16 stays 16 at blksize 512 and 1468, the OACK
/// grants 8 at 8192 (RFC 7440 lets the server answer less), and blocks over 32 KiB go in
/// lockstep. It also bounds the window the server holds (and the next one, read ahead)
/// to 64 KiB each per transfer.
pub const MAX_WINDOW_BYTES: u32 = 64 * 1024;
/// Concurrent transfers allowed from one client IP address.
pub const MAX_PER_CLIENT: usize = 8;
/// Concurrent transfers allowed in total.
pub const MAX_TOTAL: usize = 64;
/// How long a request waits for one of the [`MAX_TOTAL`] slots before it is refused:
/// under a TFTP client's own give-up time (curl: 60 s with `-m 60`, resending every 5 s).
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// Resends of an unacknowledged window before the transfer is abandoned.
pub const MAX_RETRIES: u32 = 8;
/// Disk read size for images and tree files kept on disk: one positioned read per this
/// many bytes (128 blocks at blksize 512, 8 at 8192).
const DISK_CHUNK: usize = 64 * 1024;

/// Serve TFTP on `listen` until the future is dropped. `ready` receives the bound
/// address (the real port when `listen` has port 0) once requests can be answered.
///
/// async-tftp is built on smol's async-io. Requests are received and opened (the
/// handler below: path, generation, access, slot) on a thread of its own under
/// `async_io::block_on`; each transfer then runs on a thread of the `blocking` crate's
/// pool with blocking socket calls (`blocking_read_transfers`, a local patch: see
/// vendor/async-tftp/README.ztp.md). Measured with perf and strace (bench/tftp's image at
/// blksize 1468, client and server pinned to different CPUs), upstream's async transfer
/// made about 4.5 system calls per lockstep block (the ACK wait re-arms the socket in
/// epoll and inserts a new reactor timer, which wakes the reactor: eventfd write and
/// read, timerfd_settime, a second epoll_wait) and used 1.3-1.6x tftpd-hpa's CPU per
/// MiB; the blocking transfer makes 2 (send, recv) and uses less than tftpd-hpa. At
/// most [`MAX_TOTAL`] transfers run, so at most that many such threads.
pub async fn serve(
    state: Arc<State>,
    listen: SocketAddr,
    ready: oneshot::Sender<SocketAddr>,
) -> io::Result<()> {
    // Opening an image (its checks) runs on tokio's blocking pool through this handle.
    let rt = Handle::try_current().map_err(io::Error::other)?;
    // Bind it ourselves so the real address is known before serving starts.
    let socket = std::net::UdpSocket::bind(listen)?;
    let addr = socket.local_addr()?;
    let handler = GenHandler { state, rt, slots: Arc::new(Mutex::new(Slots::default())) };
    // Dropping this future drops `stop`, which ends the serving thread.
    let (stop, stopped) = oneshot::channel::<()>();
    let (done_tx, done) = oneshot::channel::<io::Result<()>>();
    std::thread::Builder::new().name("tftp".into()).spawn(move || {
        let serving = async move {
            let server = TftpServerBuilder::with_handler(handler)
                .std_socket(socket)
                .map_err(to_io)?
                .block_size_limit(MAX_BLKSIZE)
                .window_size_limit(MAX_WINDOW)
                .window_bytes_limit(MAX_WINDOW_BYTES)
                .max_send_retries(MAX_RETRIES)
                // Each transfer on a thread of its own with blocking sends and receives:
                // see `serve`'s comment.
                .blocking_read_transfers(true)
                .build()
                .await
                .map_err(to_io)?;
            // The receiver may have gone away (the caller gave up waiting); serving is
            // still right.
            let _ = ready.send(addr);
            server.serve().await.map_err(to_io)
        };
        let result = async_io::block_on(futures_lite::future::or(serving, async move {
            let _ = stopped.await;
            Ok(())
        }));
        let _ = done_tx.send(result);
    })?;
    let _keep = stop;
    done.await.unwrap_or_else(|_| Err(io::Error::other("the TFTP thread stopped")))
}

fn to_io(e: async_tftp::Error) -> io::Error {
    match e {
        async_tftp::Error::Io(e) | async_tftp::Error::Bind(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

struct GenHandler {
    state: Arc<State>,
    rt: Handle,
    slots: Arc<Mutex<Slots>>,
}

impl Handler for GenHandler {
    type Reader = Transfer;
    type Writer = Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Transfer, Option<u64>), packet::Error> {
        // async-tftp hands over the request's file name (a UTF-8 string) as a Path.
        let raw = path.to_string_lossy();
        let clean = match paths::clean(&raw) {
            Ok(c) => c,
            Err(e) => {
                let shown: String = raw.chars().take(200).collect();
                tracing::warn!(peer = %client, path = ?shown, reason = %e, "tftp: refused path");
                return Err(packet::Error::Msg(format!("refused: {e}")));
            }
        };
        let generation = self.state.current();
        let Some(served) = generation.get(&clean) else {
            tracing::debug!(peer = %client, path = %clean, generation = %generation.id, "tftp: not found");
            return Err(packet::Error::FileNotFound);
        };
        if let crate::access::Access::Refused { device, owner } =
            crate::access::check(&generation, &clean, client.ip())
        {
            crate::access::report(&self.state, "tftp", client.ip(), &clean, &device, owner);
            return Err(packet::Error::PermissionDenied);
        }
        if let Served::Tree(f) = &served
            && !f.vouched()
            && !crate::files::still_matches(&self.rt, f).await
        {
            tracing::warn!(peer = %client, path = %clean, generation = %generation.id, "tftp: file changed on disk since its check (no longer the sha256 in runtime.json): not served");
            return Err(packet::Error::Msg("file changed on the server, retry later".into()));
        }
        // async-tftp opens one request at a time (the handler is behind its lock), so
        // requests waiting here are served in the order they came.
        let Some(slot) = Slot::wait(&self.slots, client.ip(), SLOT_WAIT).await else {
            tracing::warn!(peer = %client, path = %clean, "tftp: too many transfers, refused");
            return Err(packet::Error::Msg("server busy, retry later".into()));
        };
        let (source, size) = match served {
            Served::Tree(f) => match f.data() {
                Data::Memory(b) => (Source::Tree(Cursor::new(b.clone())), f.len()),
                // A tree file kept as the descriptor it was checked through: the old
                // generation's bytes even after a rebuild replaced the directory.
                Data::Disk(file, size) => (Source::disk(file.clone(), *size), *size),
            },
            Served::Image(i) => match open_image(&self.rt, i.path.clone(), i.size).await {
                Ok(file) => (Source::disk(Arc::new(file), i.size), i.size),
                Err(e) => {
                    tracing::warn!(peer = %client, path = %clean, file = %i.path.display(), error = %e, "tftp: image not servable");
                    return Err(packet::Error::Msg("file not available, retry later".into()));
                }
            },
        };
        tracing::debug!(peer = %client, path = %clean, size, generation = %generation.id, "tftp: transfer start");
        METRICS.tftp_started.inc();
        let progress = crate::progress::Tracker::start(client.ip(), "tftp", &clean, size);
        let t = Transfer {
            source,
            sent: 0,
            size,
            peer: *client,
            path: clean,
            generation,
            state: self.state.clone(),
            started: Instant::now(),
            progress,
            _slot: slot,
        };
        Ok((t, Some(size)))
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Sink, packet::Error> {
        let shown: String = path.to_string_lossy().chars().take(200).collect();
        tracing::warn!(peer = %client, path = ?shown, "tftp: write request refused (read-only server)");
        Err(packet::Error::PermissionDenied)
    }
}

/// One read transfer: the bytes, the generation they came from, and its slot.
struct Transfer {
    source: Source,
    sent: u64,
    size: u64,
    peer: SocketAddr,
    path: String,
    generation: Arc<Generation>,
    state: Arc<State>,
    started: Instant,
    progress: crate::progress::Tracker,
    _slot: Slot,
}

enum Source {
    /// A zero-copy cursor over the generation's bytes.
    Tree(Cursor<Bytes>),
    /// A file read with positioned reads, [`DISK_CHUNK`] at a time into one buffer kept
    /// for the transfer, right on the polling thread: the transfer's own thread
    /// (`blocking_read_transfers`), where a read that waits for the disk holds up only
    /// this transfer, as in tftpd-hpa's forked child. (A read per chunk rather than per
    /// block: at blksize 512 a read per block would add a system call to every block.)
    Disk {
        file: Arc<ServedFile>,
        /// File offset of the next chunk, and the file's end.
        pos: u64,
        end: u64,
        buf: Vec<u8>,
        /// The unsent part of `buf` is `buf[at..len]`.
        at: usize,
        len: usize,
    },
}

impl Source {
    fn disk(file: Arc<ServedFile>, size: u64) -> Source {
        Source::Disk { file, pos: 0, end: size, buf: Vec::new(), at: 0, len: 0 }
    }
}

/// Reads the next chunk of `file` at `pos` into `buf` (sized on first use); returns
/// its length, 0 at `end`. A file that shrank while served is an error, not a short file.
fn read_chunk(file: &File, pos: u64, end: u64, buf: &mut Vec<u8>) -> io::Result<usize> {
    let n = (end.saturating_sub(pos)).min(DISK_CHUNK as u64) as usize;
    if buf.len() < n {
        buf.resize(DISK_CHUNK, 0);
    }
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..n], pos + got as u64) {
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served"));
            }
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl AsyncRead for Transfer {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match &mut this.source {
            Source::Tree(c) => ready!(Pin::new(c).poll_read(cx, buf))?,
            Source::Disk { file, pos, end, buf: chunk, at, len } => {
                if *at == *len {
                    *len = read_chunk(file, *pos, *end, chunk)?;
                    *pos += *len as u64;
                    *at = 0;
                    if *len == 0 {
                        return Poll::Ready(Ok(0));
                    }
                }
                let n = buf.len().min(*len - *at);
                buf[..n].copy_from_slice(&chunk[*at..*at + n]);
                *at += n;
                n
            }
        };
        this.sent += n as u64;
        this.progress.add(n);
        Poll::Ready(Ok(n))
    }
}

impl Drop for Transfer {
    /// async-tftp drops the reader when the transfer ends either way; this is the only
    /// place where the end is observable. "done" means every byte was handed to the
    /// sender: async-tftp 0.4.2 does not report whether the last window was acknowledged.
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let (peer, path, id) = (&self.peer, &self.path, &self.generation.id);
        let done = self.sent >= self.size;
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

/// Why no slot was given.
#[derive(Debug, PartialEq, Eq)]
enum Full {
    Client,
    Total,
}

impl Slot {
    fn take(slots: &Arc<Mutex<Slots>>, ip: IpAddr) -> Result<Slot, Full> {
        // A panic while holding this lock cannot leave the counts half-updated, so a
        // poisoned lock is still good to use.
        let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
        let mine = s.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= MAX_PER_CLIENT {
            return Err(Full::Client);
        }
        if s.total >= MAX_TOTAL {
            return Err(Full::Total);
        }
        s.total += 1;
        s.per_ip.insert(ip, mine + 1);
        Ok(Slot { slots: Arc::clone(slots), ip })
    }

    /// A slot, waiting up to `max` while all [`MAX_TOTAL`] are taken; none at once when
    /// this client is over [`MAX_PER_CLIENT`] (waiting would only hold up the others).
    /// Polled: slots free at most a few hundred times a second, one waiter at a time.
    async fn wait(slots: &Arc<Mutex<Slots>>, ip: IpAddr, max: Duration) -> Option<Slot> {
        let until = Instant::now() + max;
        loop {
            match Slot::take(slots, ip) {
                Ok(s) => return Some(s),
                Err(Full::Total) if Instant::now() < until => {
                    async_io::Timer::after(Duration::from_millis(10)).await;
                }
                Err(_) => return None,
            }
        }
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
        assert_eq!(Slot::take(&slots, a).err(), Some(Full::Client), "per-client cap");
        drop(held);
        let mut all = Vec::new();
        for i in 0..MAX_TOTAL {
            let ip: IpAddr = format!("10.0.1.{}", i % 250).parse().unwrap();
            all.push(Slot::take(&slots, ip).unwrap());
        }
        assert_eq!(Slot::take(&slots, "10.9.9.9".parse().unwrap()).err(), Some(Full::Total), "total cap");
        drop(all);
        let s = slots.lock().unwrap();
        assert_eq!((s.total, s.per_ip.len()), (0, 0));
    }

    #[test]
    fn a_request_over_the_total_waits_for_a_slot_to_free() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let mut all: Vec<Slot> = (0..MAX_TOTAL)
            .map(|i| Slot::take(&slots, format!("10.0.2.{}", i % 250).parse().unwrap()).unwrap())
            .collect();
        let me: IpAddr = "10.9.9.9".parse().unwrap();
        // Nobody finishes: refused after the wait.
        let t0 = Instant::now();
        assert!(async_io::block_on(Slot::wait(&slots, me, Duration::from_millis(100))).is_none());
        assert!(t0.elapsed() >= Duration::from_millis(100));
        // A transfer ends 200 ms in: the waiting request gets its slot.
        let freed = all.pop().unwrap();
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(freed);
        });
        let t0 = Instant::now();
        let got = async_io::block_on(Slot::wait(&slots, me, Duration::from_secs(10)));
        ender.join().unwrap();
        assert!(got.is_some(), "queued, not refused");
        assert!(t0.elapsed() >= Duration::from_millis(150), "it did wait for the end");
        // Over the per-client cap there is no waiting.
        drop(all);
        let mine: Vec<Slot> = (1..MAX_PER_CLIENT).map(|_| Slot::take(&slots, me).unwrap()).collect();
        let t0 = Instant::now();
        assert!(async_io::block_on(Slot::wait(&slots, me, Duration::from_secs(10))).is_none());
        assert!(t0.elapsed() < Duration::from_secs(1));
        drop((mine, got));
        let s = slots.lock().unwrap();
        assert_eq!((s.total, s.per_ip.len()), (0, 0));
    }
}
