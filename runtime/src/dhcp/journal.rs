//! The lease journal: `dhcp-leases.log` in the state directory, one line per lease
//! event, appended in batches and made durable with one `fdatasync` per batch.
//!
//! Why a plain append-only file and not SQLite (which the status store uses): a lease
//! event is a 60-byte line, and the DHCP path's only need is "this batch is on disk"
//! as fast as possible. An append plus one fdatasync is the least I/O that gives that;
//! SQLite in WAL mode would write whole pages and index updates per commit and add
//! checkpoints. Replay is a linear read, a line torn by a crash is recognised by its
//! checksum (it can only be one whose batch was never acknowledged, since ACKs wait for
//! the sync), and compaction writes a fresh file beside the old one and renames it over,
//! so a crash at any point leaves one complete journal.
//!
//! Line format: `OP ADDR CLIENT TIME CHECK`, OP `B` (bound until TIME), `F` (freed at
//! TIME), `D` (declined until TIME); CLIENT is the hex client key (`-` for none); CHECK
//! is the FNV-1a 64 of the text before it, in hex (torn-write detection, not security).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::dhcp::leases::{ClientKey, LeaseTable, Op, Record};

pub const FILE_NAME: &str = "dhcp-leases.log";
const HEADER: &str = "# ztp-runtime DHCP lease journal v1\n";

pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    /// None while the file cannot be opened for appending (a read-only state
    /// directory): each append tries again.
    file: Option<File>,
    buf: Vec<u8>,
    /// Records appended since the journal was last rewritten.
    pub appended: u64,
    /// A failed append may have left part of a line that could not be cut off again
    /// (the disk went read-only): the next append starts on a new line, so the torn
    /// part cannot swallow a good record.
    torn: bool,
}

/// What reopening found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub records: usize,
    /// Lines that failed their checksum or did not parse (a torn tail after a crash).
    pub skipped: usize,
}

/// Read the journal in `dir` (if any) into a table, then rewrite it compacted. A journal
/// that can be read but not written (full or read-only disk) is served from as it is.
pub fn open(dir: &Path, now: u64) -> io::Result<(LeaseTable, Journal, Replayed)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE_NAME);
    let mut table = LeaseTable::default();
    let mut seen = Replayed::default();
    match std::fs::read(&path) {
        Ok(bytes) => {
            for line in bytes.split(|b| *b == b'\n') {
                if line.is_empty() || line.starts_with(b"#") {
                    continue;
                }
                match std::str::from_utf8(line).ok().and_then(parse) {
                    Some(r) => {
                        table.replay(&r);
                        seen.records += 1;
                    }
                    None => seen.skipped += 1,
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut j =
        Journal { dir: dir.to_path_buf(), file: None, path, buf: Vec::new(), appended: 0, torn: false };
    let opened = match append_handle(&j.path) {
        Ok(f) => {
            j.file = Some(f);
            j.compact(&table.snapshot(now))
        }
        Err(e) => Err(e),
    };
    if let Err(e) = opened {
        // A full or read-only disk: keep the journal as it is and append to it (from a
        // fresh line) once writes work; until then pool ACKs are withheld.
        tracing::warn!(error = %e, "DHCP lease journal not compacted at start; appending to it as it is");
        crate::storage::STORAGE.failed("dhcp lease journal", &e.to_string());
        let _ = std::fs::remove_file(dir.join(format!("{FILE_NAME}.tmp")));
        j.torn = true;
    }
    Ok((table, j, seen))
}

fn append_handle(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

impl Journal {
    /// Append records and wait until they are on disk.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        if self.torn {
            self.buf.push(b'\n');
        }
        for r in records {
            format_into(&mut self.buf, r);
        }
        // A full disk can take part of the write: cut the file back to where it was, so
        // that a retry appends whole lines only.
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(append_handle(&self.path)?),
        };
        let before = file.metadata()?.len();
        let r = file.write_all(&self.buf).and_then(|()| file.sync_data());
        if r.is_err() {
            self.torn = file.set_len(before).is_err();
        } else {
            self.torn = false;
            self.appended += records.len() as u64;
        }
        r
    }

    /// Replace the journal with `snapshot`: write a new file, sync it, rename it over the
    /// old one and sync the directory, so that either file is complete after a crash.
    pub fn compact(&mut self, snapshot: &[Record]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        self.buf.clear();
        self.buf.extend_from_slice(HEADER.as_bytes());
        for r in snapshot {
            format_into(&mut self.buf, r);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&self.buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file = Some(append_handle(&self.path)?);
        self.appended = 0;
        self.torn = false;
        Ok(())
    }
}

/// Work for the journal writer thread, from the DHCP receive loop.
pub enum Job {
    /// Make these records durable, then send these replies.
    Batch(Batch),
    /// Rewrite the journal as this snapshot.
    Compact(Vec<Record>),
}

/// Pool-lease records and the ACKs that wait for them.
#[derive(Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Encoded reply, destination, and the directed-broadcast fallback (see [`send`]).
    pub replies: Vec<(Vec<u8>, SocketAddr, Option<SocketAddr>)>,
}

/// Start the journal's writer: a thread of its own that takes every job waiting, appends
/// their records with one fdatasync and only then sends their ACKs on `sock` (the DHCP
/// socket, duplicated). A plain thread blocked on the queue: handing each batch from a
/// task to `spawn_blocking` and back cost three thread wake-ups per sync, the largest
/// item after the syncs themselves in a perf profile under perfdhcp. The thread ends
/// when the receive loop drops its sender.
pub fn spawn_writer(journal: Journal, rx: mpsc::Receiver<Job>, sock: UdpSocket) -> io::Result<()> {
    std::thread::Builder::new().name("dhcp-journal".into()).spawn(move || writer(journal, rx, &sock))?;
    Ok(())
}

fn writer(mut journal: Journal, mut rx: mpsc::Receiver<Job>, sock: &UdpSocket) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let result = write_jobs(&mut journal, &jobs);
        crate::storage::STORAGE.record("dhcp lease journal", &result);
        if let Err(e) = result {
            // Not durable, so not acknowledged: the clients retry and, the table
            // holding their leases, get the same addresses once the disk recovers.
            tracing::error!(error = %e, "DHCP lease journal write failed; ACKs withheld");
            jobs.clear();
            continue;
        }
        for job in jobs.drain(..) {
            if let Job::Batch(b) = job {
                send_all(sock, &b.replies);
            }
        }
    }
}

fn write_jobs(j: &mut Journal, jobs: &[Job]) -> io::Result<()> {
    let mut pending: Vec<Record> = Vec::new();
    for job in jobs {
        match job {
            Job::Batch(b) => pending.extend_from_slice(&b.records),
            Job::Compact(snap) => {
                j.append(&pending)?;
                pending.clear();
                j.compact(snap)?;
            }
        }
    }
    j.append(&pending)
}

/// Send a batch's replies with as few system calls as the kernel takes (sendmmsg, up to
/// 64 datagrams a call); a datagram it refuses goes through [`send`], which knows the
/// fallbacks, and the rest follow in the next call.
pub fn send_all(sock: &UdpSocket, replies: &[(Vec<u8>, SocketAddr, Option<SocketAddr>)]) {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    for chunk in replies.chunks(64) {
        let addrs: Vec<SocketAddrAny> = chunk.iter().map(|(_, dest, _)| dest.as_any()).collect();
        let iovs: Vec<[io::IoSlice<'_>; 1]> = chunk.iter().map(|(b, _, _)| [io::IoSlice::new(b)]).collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            chunk.iter().map(|_| SendAncillaryBuffer::default()).collect();
        let mut msgs: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&iovs)
            .zip(controls.iter_mut())
            .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
            .collect();
        let mut done = 0;
        while done < chunk.len() {
            match sendmmsg(sock, &mut msgs[done..], SendFlags::empty()) {
                Ok(n) if n > 0 => done += n,
                _ => {
                    let (bytes, dest, fallback) = &chunk[done];
                    send(sock, bytes, *dest, *fallback);
                    done += 1;
                }
            }
        }
    }
}

/// Send a reply from the writer thread. The socket is non-blocking (it is the receive
/// loop's, duplicated), so a full send buffer is waited out briefly. A limited broadcast
/// fails with "network unreachable" when the host has no route for it; the subnet's
/// directed broadcast then reaches the same segment (as the receive loop's own send).
pub fn send(sock: &UdpSocket, bytes: &[u8], dest: SocketAddr, fallback: Option<SocketAddr>) {
    let mut to = dest;
    for _ in 0..100 {
        match sock.send_to(bytes, to) {
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == io::ErrorKind::NetworkUnreachable && fallback.is_some_and(|f| f != to) => {
                to = fallback.unwrap_or(to);
            }
            Err(e) => {
                tracing::debug!(%dest, %to, error = %e, "DHCP reply not sent");
                return;
            }
        }
    }
    tracing::debug!(%dest, "DHCP reply not sent: the socket stayed full");
}

fn format_into(out: &mut Vec<u8>, r: &Record) {
    let op = match r.op {
        Op::Bind => 'B',
        Op::Free => 'F',
        Op::Decline => 'D',
    };
    let start = out.len();
    let _ = write!(out, "{op} {} ", r.addr);
    let key = r.client.as_bytes();
    if key.is_empty() {
        out.push(b'-');
    }
    for b in key {
        let _ = write!(out, "{b:02x}");
    }
    let _ = write!(out, " {}", r.time);
    let check = fnv1a(&out[start..]);
    let _ = writeln!(out, " {check:016x}");
}

fn parse(line: &str) -> Option<Record> {
    let (body, check) = line.rsplit_once(' ')?;
    if u64::from_str_radix(check, 16).ok()? != fnv1a(body.as_bytes()) {
        return None;
    }
    let mut f = body.split(' ');
    let op = match f.next()? {
        "B" => Op::Bind,
        "F" => Op::Free,
        "D" => Op::Decline,
        _ => return None,
    };
    let addr: Ipv4Addr = f.next()?.parse().ok()?;
    let client = ClientKey::from_hex(f.next()?)?;
    let time: u64 = f.next()?.parse().ok()?;
    if f.next().is_some() {
        return None;
    }
    Some(Record { op, addr, client, time })
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply of a batch arrives, in order, across sendmmsg calls (chunks of 64),
    /// and one the kernel refuses (port 0) neither stops nor reorders the rest.
    #[test]
    fn a_batch_of_replies_all_arrive_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let to = rx.local_addr().unwrap();
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut replies: Vec<(Vec<u8>, SocketAddr, Option<SocketAddr>)> = (0..150u32)
            .map(|i| (format!("reply {i}").into_bytes().repeat(1 + i as usize % 5), to, None))
            .collect();
        replies.insert(70, (b"nowhere".to_vec(), bad, None));
        send_all(&tx, &replies);
        let mut buf = [0u8; 2048];
        for (want, dest, _) in replies.iter().filter(|r| r.1 != bad) {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want.as_slice(), "to {dest}");
        }
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "nothing more than the batch");
    }

    #[test]
    fn lines_round_trip_and_torn_lines_are_refused() {
        let r = Record { op: Op::Bind, addr: Ipv4Addr::new(10, 0, 0, 9), client: ClientKey::NONE, time: 42 };
        let mut buf = Vec::new();
        format_into(&mut buf, &r);
        let line = std::str::from_utf8(&buf).unwrap().trim_end();
        assert_eq!(parse(line), Some(r));
        assert_eq!(parse(&line[..line.len() - 3]), None);
        assert_eq!(parse(&line.replace("10.0.0.9", "10.0.0.8")), None);
    }
}
