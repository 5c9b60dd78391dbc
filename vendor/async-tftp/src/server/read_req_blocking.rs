//! ztp patch: a read transfer driven by blocking socket calls on a thread of
//! its own (`TftpServerBuilder::blocking_read_transfers`, see README.ztp.md).
//!
//! The protocol is the one of `read_req.rs` (same OACK, windows, ACK
//! arithmetic, timeouts and resends); only the waiting differs. Upstream waits
//! for each ACK through async-io's reactor: an `epoll_ctl` to re-arm the
//! socket, a new timer (whose insertion wakes the reactor: an eventfd write,
//! an extra `epoll_wait`, the eventfd read, a `timerfd_settime`), then
//! `epoll_wait`. Here the transfer's socket is connected to the client, its
//! receive timeout is set once, and a lockstep block costs one `send` and one
//! `recv`, as in tftpd-hpa's forked child.

use futures_lite::{future, AsyncRead, AsyncReadExt};
use log::trace;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::read_req::build_oack_opts;
use super::{ServerConfig, DEFAULT_BLOCK_SIZE};
use crate::error::{Error, Result};
use crate::packet::{Packet, RwReq, PACKET_DATA_HEADER_LEN};

/// One read transfer on the calling thread, which it blocks until the end.
///
/// Returns an error only when the transfer could not start (its socket); the
/// caller then answers the client with it, as upstream does. Errors after that
/// are sent to the client over the transfer's socket here. `closed` is set
/// when the server is dropped: the transfer then stops before its next
/// (re)send, so within one timeout.
pub(crate) fn serve_read<R>(
    reader: &mut R,
    file_size: Option<u64>,
    peer: SocketAddr,
    req: &RwReq,
    config: &ServerConfig,
    local_ip: IpAddr,
    closed: &AtomicBool,
) -> Result<()>
where
    R: AsyncRead + Unpin,
{
    let oack_opts = build_oack_opts(config, req, file_size);
    let block_size = oack_opts
        .as_ref()
        .and_then(|o| o.block_size)
        .map(usize::from)
        .unwrap_or(DEFAULT_BLOCK_SIZE);
    // Default window size is 1 as per rfc7440
    let window_size =
        oack_opts.as_ref().and_then(|o| o.window_size).unwrap_or(1) as usize;
    let timeout = oack_opts
        .as_ref()
        .and_then(|o| o.timeout)
        .map(|t| Duration::from_secs(u64::from(t)))
        .unwrap_or(config.timeout);

    let socket =
        UdpSocket::bind(SocketAddr::new(local_ip, 0)).map_err(Error::Bind)?;
    // Connected: the kernel drops datagrams from anyone but the client (upstream
    // ignores them after reading them) and skips the route lookup per send.
    socket.connect(peer).map_err(Error::Bind)?;
    socket.set_read_timeout(Some(timeout)).map_err(Error::Bind)?;

    let mut t = Transfer {
        socket,
        peer,
        block_size,
        window_size,
        timeout,
        timeout_changed: false,
        max_send_retries: config.max_send_retries,
        closed,
    };
    if let Err(e) = t.run(reader, oack_opts.as_ref()) {
        trace!("RRQ request failed (peer: {}, error: {})", peer, e);
        if !closed.load(Ordering::Relaxed) {
            let mut buffer = BytesMut::with_capacity(DEFAULT_BLOCK_SIZE);
            Packet::Error(e.into()).encode(&mut buffer);
            // Errors are never retransmitted, and a failed send changes nothing.
            let _ = t.socket.send(&buffer[..]);
        }
    }
    Ok(())
}

struct Transfer<'c> {
    socket: UdpSocket,
    peer: SocketAddr,
    block_size: usize,
    window_size: usize,
    timeout: Duration,
    /// The socket's receive timeout was shortened (see `recv_ack`).
    timeout_changed: bool,
    max_send_retries: u32,
    closed: &'c AtomicBool,
}

impl Transfer<'_> {
    fn run<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        oack: Option<&crate::packet::Opts>,
    ) -> Result<()> {
        // Sent packets not yet acknowledged, from block `window_base` on.
        let mut window: VecDeque<Vec<u8>> =
            VecDeque::with_capacity(self.window_size);
        let mut window_base: u16 = 1;
        let mut src = Blocks::new(reader, self.block_size);

        // The first block is read before the OACK goes out, so that a reader
        // failing at once still gets its error to the client (as upstream).
        if let Some(b) = src.next_block()? {
            window.push_back(b);
        }
        if let Some(opts) = oack {
            trace!("RRQ OACK (peer: {}, opts: {:?}", self.peer, opts);
            let mut b = BytesMut::with_capacity(PACKET_DATA_HEADER_LEN + 64);
            Packet::OAck(opts.to_owned()).encode(&mut b);
            self.send_window(&VecDeque::from([b.to_vec()]), 0, &mut src)?;
        }

        loop {
            while window.len() < self.window_size {
                match src.next_block()? {
                    Some(b) => window.push_back(b),
                    None => break,
                }
            }

            let blocks_acked =
                self.send_window(&window, window_base, &mut src)?;
            window_base = window_base.wrapping_add(blocks_acked);
            for _ in 0..blocks_acked {
                if let Some(b) = window.pop_front() {
                    src.recycle(b);
                }
            }

            if src.is_done() && window.is_empty() {
                break;
            }
        }
        trace!("RRQ request served (peer: {})", self.peer);
        Ok(())
    }

    /// Sends the window and waits for its acknowledgement, resending on
    /// timeout; returns how many of its packets were acknowledged.
    ///
    /// After the first send, the next window is read ahead while the packets
    /// and the ACK travel (as tftpd-hpa reads ahead), so that when the ACK
    /// comes the next packet is ready: in lockstep the round trip then
    /// includes no file read.
    fn send_window<R: AsyncRead + Unpin>(
        &mut self,
        window: &VecDeque<Vec<u8>>,
        window_base: u16,
        src: &mut Blocks<'_, R>,
    ) -> Result<u16> {
        for attempt in 0..=self.max_send_retries {
            if self.closed.load(Ordering::Relaxed) {
                return Err(Error::Io(io::Error::other("server stopped")));
            }
            for packet in window {
                match self.socket.send(packet) {
                    // An ICMP error from an earlier send: upstream's unconnected
                    // socket never sees these, so neither does this transfer.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    r => {
                        r?;
                    }
                }
            }
            if attempt == 0 {
                src.read_ahead(self.window_size);
            }
            match self.recv_ack(window_base, window.len() as u16) {
                Ok(blocks_acked) => return Ok(blocks_acked),
                Err(ref e) if e.kind() == io::ErrorKind::TimedOut => {
                    trace!(
                        "RRQ (peer: {}, block_id: {}) - Timeout",
                        self.peer,
                        window_base
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::MaxSendRetriesReached(self.peer, window_base))
    }

    /// Waits up to the timeout for an ACK within the window; returns how many
    /// blocks it acknowledges. Anything else from the client is ignored, and
    /// does not extend the wait.
    fn recv_ack(
        &mut self,
        window_base: u16,
        window_len: u16,
    ) -> io::Result<u16> {
        if self.timeout_changed {
            self.socket.set_read_timeout(Some(self.timeout))?;
            self.timeout_changed = false;
        }
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 1024];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(len) => {
                    if let Ok(Packet::Ack(id)) = Packet::decode(&buf[..len]) {
                        if let Some(n) = acked(window_base, window_len, id) {
                            return Ok(n);
                        }
                        trace!("Unexpected ack packet {id}, window_base: {window_base}, window_len: {window_len}");
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => return Err(e),
            }
            // Something other than the awaited ACK: wait only for what is left.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.socket.set_read_timeout(Some(left))?;
            self.timeout_changed = true;
        }
    }
}

/// The file's blocks as DATA packets, in order, with a read-ahead queue.
struct Blocks<'r, R> {
    reader: &'r mut R,
    block_size: usize,
    /// Block number of the next block read.
    next_id: u16,
    /// The last block (shorter than `block_size`) has been read.
    eof: bool,
    /// Blocks read ahead of the window, in order.
    ahead: VecDeque<Vec<u8>>,
    /// An error met while reading ahead, returned when its block is wanted,
    /// so that the client sees it at the same point as without read-ahead.
    failed: Option<Error>,
    /// Buffers of acknowledged packets, to be filled again.
    spare: Vec<Vec<u8>>,
}

impl<'r, R: AsyncRead + Unpin> Blocks<'r, R> {
    fn new(reader: &'r mut R, block_size: usize) -> Self {
        Blocks {
            reader,
            block_size,
            next_id: 1,
            eof: false,
            ahead: VecDeque::new(),
            failed: None,
            spare: Vec::new(),
        }
    }

    /// The next block's packet, `None` after the last one.
    fn next_block(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(b) = self.ahead.pop_front() {
            return Ok(Some(b));
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.eof {
            return Ok(None);
        }
        self.read().map(Some)
    }

    /// Reads blocks ahead until `n` wait in the queue (or the file ends, or a
    /// read fails: kept for [`Self::next_block`]).
    fn read_ahead(&mut self, n: usize) {
        while self.ahead.len() < n && !self.eof && self.failed.is_none() {
            match self.read() {
                Ok(b) => self.ahead.push_back(b),
                Err(e) => self.failed = Some(e),
            }
        }
    }

    fn recycle(&mut self, b: Vec<u8>) {
        self.spare.push(b);
    }

    /// Every block was handed out.
    fn is_done(&self) -> bool {
        self.eof && self.ahead.is_empty() && self.failed.is_none()
    }

    /// Reads block `next_id` into a spare buffer (or a new one).
    fn read(&mut self) -> Result<Vec<u8>> {
        let full = PACKET_DATA_HEADER_LEN + self.block_size;
        let mut b = self.spare.pop().unwrap_or_default();
        // Reused buffers are full-length already (only the last block is
        // shorter, and it is never reused), so this zeroes each buffer once.
        b.resize(full, 0);
        b[..2].copy_from_slice(&3u16.to_be_bytes());
        b[2..4].copy_from_slice(&self.next_id.to_be_bytes());
        let mut len = 0;
        while len < self.block_size {
            let at = PACKET_DATA_HEADER_LEN + len;
            match future::block_on(self.reader.read(&mut b[at..]))? {
                0 => break,
                n => len += n,
            }
        }
        b.truncate(PACKET_DATA_HEADER_LEN + len);
        self.eof = len < self.block_size;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(b)
    }
}

/// How many blocks an ACK of `id` acknowledges in the window of `window_len`
/// blocks from `window_base` (block ids wrap at 65536), or `None` when `id` is
/// outside it. The arithmetic of upstream's `ReadRequest::recv_ack`. (This crate's
/// own tests do not build in the workspace; runtime/tests/tftp_wire.rs
/// `block_numbers_wrap_past_65535` covers the wrap.)
fn acked(window_base: u16, window_len: u16, id: u16) -> Option<u16> {
    let window_end = window_base.wrapping_add(window_len);
    if window_end > window_base {
        (id >= window_base && id < window_end).then(|| id - window_base + 1)
    } else if id >= window_base {
        Some(1 + (id - window_base))
    } else if id < window_end {
        Some(1 + id + (window_len - window_end))
    } else {
        None
    }
}
