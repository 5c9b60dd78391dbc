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
        // Sent packets, each `PACKET_DATA_HEADER_LEN + block_size` long but the
        // last; acknowledged ones are kept in `spare` and filled again.
        let mut window: VecDeque<Vec<u8>> =
            VecDeque::with_capacity(self.window_size);
        let mut spare: Vec<Vec<u8>> = Vec::with_capacity(self.window_size);
        let mut window_base: u16 = 1;

        let (buf, mut is_last_block) = self.fill(reader, window_base, None)?;
        window.push_back(buf);

        // The OACK goes out after the first block was read, so that a reader
        // failing at once still gets its error to the client (as upstream).
        if let Some(opts) = oack {
            trace!("RRQ OACK (peer: {}, opts: {:?}", self.peer, opts);
            let mut b = BytesMut::with_capacity(PACKET_DATA_HEADER_LEN + 64);
            Packet::OAck(opts.to_owned()).encode(&mut b);
            self.send_window(&VecDeque::from([b.to_vec()]), 0)?;
        }

        loop {
            let mut block_id = window_base.wrapping_add(window.len() as u16);
            while !is_last_block && window.len() < self.window_size {
                let buf;
                (buf, is_last_block) =
                    self.fill(reader, block_id, spare.pop())?;
                window.push_back(buf);
                block_id = block_id.wrapping_add(1);
            }

            let blocks_acked = self.send_window(&window, window_base)?;
            window_base = window_base.wrapping_add(blocks_acked);
            for _ in 0..blocks_acked {
                if let Some(b) = window.pop_front() {
                    spare.push(b);
                }
            }

            if is_last_block && window.is_empty() {
                break;
            }
        }
        trace!("RRQ request served (peer: {})", self.peer);
        Ok(())
    }

    /// Block `block_id` read into `reuse` (or a new buffer): the packet and
    /// whether it is the last one (shorter than a block).
    fn fill<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        block_id: u16,
        reuse: Option<Vec<u8>>,
    ) -> Result<(Vec<u8>, bool)> {
        let full = PACKET_DATA_HEADER_LEN + self.block_size;
        let mut b = reuse.unwrap_or_default();
        // Reused buffers are full-length already (only the last block is
        // shorter, and it is never reused), so this zeroes each buffer once.
        b.resize(full, 0);
        b[..2].copy_from_slice(&3u16.to_be_bytes());
        b[2..4].copy_from_slice(&block_id.to_be_bytes());
        let mut len = 0;
        while len < self.block_size {
            let at = PACKET_DATA_HEADER_LEN + len;
            match future::block_on(reader.read(&mut b[at..]))? {
                0 => break,
                n => len += n,
            }
        }
        b.truncate(PACKET_DATA_HEADER_LEN + len);
        Ok((b, len < self.block_size))
    }

    /// Sends the window and waits for its acknowledgement, resending on
    /// timeout; returns how many of its packets were acknowledged.
    fn send_window(
        &mut self,
        window: &VecDeque<Vec<u8>>,
        window_base: u16,
    ) -> Result<u16> {
        for _ in 0..=self.max_send_retries {
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
