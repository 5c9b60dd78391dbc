//! A TFTP read client for bench/tftp: blksize, windowsize (RFC 7440) and tsize, many
//! transfers at once from distinct source addresses, every byte checked.
//!
//! Built by bench/tftp with `rustc -O` (std only, no crates), so the same client drives
//! ztp-runtime and tftpd-hpa. curl has no windowsize and atftp cannot choose its source
//! address (ztp-runtime caps transfers per client address, as a device fleet has one
//! address per device), hence this.
//!
//! Usage:
//!   tftp_client --server IP:PORT --file NAME --expect LOCAL_FILE [--blksize N]
//!               [--windowsize N] [--repeat N] [--parallel N] [--bind-base IP]
//!               [--timeout-ms N] [--retries N] [--deadline-s N] [--thread-per-transfer]
//!
//! `--parallel P` runs P transfers at once (one thread each, released together by a
//! barrier; P = 1 runs on the main thread); `--repeat R` runs that R times in a row. Thread i binds to --bind-base + i
//! (default 0.0.0.0 for all). Every received block is compared with LOCAL_FILE at its
//! offset, and the total must equal its size. A "server busy" error before any data
//! (ztp-runtime over its transfer caps) is asked again after a short backoff, as boot
//! loaders do; the transfer's time includes the waits. Prints one line per batch:
//!   batch=K wall_s=.. bytes=.. ok=.. failed=.. busy=.. p50_ms=.. p99_ms=.. max_ms=..
//! (busy: how many "server busy" answers the batch's transfers got and retried)
//! then the first error seen, if any, and exits 1 if any transfer failed.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

struct Args {
    server: SocketAddr,
    file: String,
    expect: Arc<Vec<u8>>,
    blksize: usize,
    windowsize: usize,
    repeat: usize,
    parallel: usize,
    bind_base: Option<Ipv4Addr>,
    timeout: Duration,
    retries: u32,
    deadline: Duration,
    thread_per_transfer: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("tftp_client: {msg}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut server, mut file, mut expect) = (None, None, None);
    let (mut blksize, mut windowsize, mut repeat, mut parallel) = (512, 1, 1, 1);
    let (mut bind_base, mut timeout_ms, mut retries, mut deadline_s) = (None, 1000u64, 5u32, 120u64);
    let mut thread_per_transfer = false;
    while let Some(k) = a.next() {
        if k == "--thread-per-transfer" {
            thread_per_transfer = true;
            continue;
        }
        let v = a.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("{k}: not a number: {v}")));
        match k.as_str() {
            "--server" => server = Some(v.parse().unwrap_or_else(|_| usage("--server: not IP:PORT"))),
            "--file" => file = Some(v),
            "--expect" => expect = Some(std::fs::read(&v).unwrap_or_else(|e| usage(&format!("{v}: {e}")))),
            "--blksize" => blksize = num(&v) as usize,
            "--windowsize" => windowsize = num(&v) as usize,
            "--repeat" => repeat = num(&v) as usize,
            "--parallel" => parallel = num(&v) as usize,
            "--bind-base" => bind_base = Some(v.parse().unwrap_or_else(|_| usage("--bind-base: not IPv4"))),
            "--timeout-ms" => timeout_ms = num(&v),
            "--retries" => retries = num(&v) as u32,
            "--deadline-s" => deadline_s = num(&v),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if !(8..=65464).contains(&blksize) || !(1..=65535).contains(&windowsize) || repeat == 0 || parallel == 0 {
        usage("blksize 8..65464, windowsize 1..65535, repeat and parallel at least 1");
    }
    Args {
        server: server.unwrap_or_else(|| usage("--server is required")),
        file: file.unwrap_or_else(|| usage("--file is required")),
        expect: Arc::new(expect.unwrap_or_else(|| usage("--expect is required"))),
        blksize,
        windowsize,
        repeat,
        parallel,
        bind_base,
        timeout: Duration::from_millis(timeout_ms),
        retries,
        deadline: Duration::from_secs(deadline_s),
        thread_per_transfer,
    }
}

fn rrq(file: &str, blksize: usize, windowsize: usize) -> Vec<u8> {
    let mut p = vec![0, 1];
    let mut put = |s: &str| {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    };
    put(file);
    put("octet");
    put("tsize");
    put("0");
    if blksize != 512 {
        put("blksize");
        put(&blksize.to_string());
    }
    if windowsize > 1 {
        put("windowsize");
        put(&windowsize.to_string());
    }
    p
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, 4, b[0], b[1]]
}

/// The options an OACK granted: (blksize, windowsize). Absent ones mean the default.
fn parse_oack(p: &[u8]) -> Result<(usize, usize), String> {
    let mut parts = p[2..].split(|&b| b == 0);
    let (mut blk, mut win) = (512, 1);
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        let v = std::str::from_utf8(v).ok().and_then(|s| s.parse::<usize>().ok());
        match (String::from_utf8_lossy(k).to_ascii_lowercase().as_str(), v) {
            ("blksize", Some(n)) => blk = n,
            ("windowsize", Some(n)) => win = n,
            _ => {}
        }
    }
    Ok((blk, win))
}

/// Why a transfer did not complete.
enum Failure {
    /// The server answered "busy" (ztp-runtime over its transfer caps): try again later.
    Busy(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

/// One read transfer, asked again (from a new port) while the server says it is busy,
/// as a device's boot loader does: after 20, 40, .. ms (at most 200, plus a per-thread
/// jitter), within the deadline. Returns the bytes received (all checked against
/// `expect`) and how many times the server said busy.
fn transfer_retrying(a: &Args, bind: Ipv4Addr, jitter_ms: u64) -> (Result<u64, String>, u32) {
    let started = Instant::now();
    let mut busy = 0u32;
    loop {
        match transfer(a, bind, started) {
            Ok(n) => return (Ok(n), busy),
            Err(Failure::Other(e)) => return (Err(e), busy),
            Err(Failure::Busy(e)) => {
                busy += 1;
                let wait = Duration::from_millis((20 * u64::from(busy)).min(200) + jitter_ms);
                if started.elapsed() + wait > a.deadline {
                    return (Err(format!("still busy after {busy} tries: {e}")), busy);
                }
                std::thread::sleep(wait);
            }
        }
    }
}

/// One read transfer; returns the bytes received (all checked against `expect`).
fn transfer(a: &Args, bind: Ipv4Addr, started: Instant) -> Result<u64, Failure> {
    let sock = UdpSocket::bind(SocketAddrV4::new(bind, 0)).map_err(|e| format!("bind {bind}: {e}"))?;
    sock.set_read_timeout(Some(a.timeout)).map_err(|e| e.to_string())?;
    let req = rrq(&a.file, a.blksize, a.windowsize);
    sock.send_to(&req, a.server).map_err(|e| format!("send RRQ: {e}"))?;
    let mut buf = vec![0u8; 65536];
    let mut peer: Option<SocketAddr> = None;
    let (mut blksize, mut window) = (512usize, 1usize);
    let mut got: u64 = 0;
    let mut expected: u16 = 1;
    let mut in_window = 0usize;
    let mut last_ack: Option<[u8; 4]> = None;
    let mut nacked = false;
    let mut tries = 0;
    loop {
        if started.elapsed() > a.deadline {
            return Err(format!("deadline passed after {got} bytes").into());
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                tries += 1;
                if tries > a.retries {
                    return Err(format!("timed out after {got} bytes").into());
                }
                // Acknowledge what arrived in order so far (RFC 7440: the sender then
                // resumes from the next block), or ask again if nothing came yet.
                match (&last_ack, peer) {
                    (Some(_), Some(to)) => {
                        let k = ack(expected.wrapping_sub(1));
                        last_ack = Some(k);
                        in_window = 0;
                        sock.send_to(&k, to)
                    }
                    _ => sock.send_to(&req, a.server),
                }
                .map_err(|e| format!("resend: {e}"))?;
                continue;
            }
            Err(e) => return Err(format!("recv: {e}").into()),
        };
        match peer {
            None if n >= 2 => peer = Some(from),
            Some(p) if p != from => continue,
            _ => {}
        }
        let to = from;
        let p = &buf[..n];
        if n < 4 {
            continue;
        }
        match u16::from_be_bytes([p[0], p[1]]) {
            6 if got == 0 && last_ack.is_none() => {
                (blksize, window) = parse_oack(p)?;
                let k = ack(0);
                sock.send_to(&k, to).map_err(|e| e.to_string())?;
                last_ack = Some(k);
            }
            5 => {
                let (code, msg) = (u16::from_be_bytes([p[2], p[3]]), String::from_utf8_lossy(&p[4..]));
                let e = format!("server error {code}: {}", msg.trim_end_matches('\0'));
                // Only before any data: a refusal at the start, not a failure midway.
                return Err(if code == 0 && got == 0 && msg.contains("busy") {
                    Failure::Busy(e)
                } else {
                    Failure::Other(e)
                });
            }
            3 => {
                let block = u16::from_be_bytes([p[2], p[3]]);
                let data = &p[4..];
                if block != expected {
                    // A gap (window mode) or a resend: acknowledge what we have, once.
                    if !nacked || window == 1 {
                        let k = ack(expected.wrapping_sub(1));
                        sock.send_to(&k, to).map_err(|e| e.to_string())?;
                        last_ack = Some(k);
                        nacked = true;
                        in_window = 0;
                    }
                    continue;
                }
                tries = 0;
                nacked = false;
                let at = got as usize;
                if data.len() > blksize || at + data.len() > a.expect.len() || a.expect[at..at + data.len()] != *data {
                    return Err(format!("block {block} at offset {at} differs from the expected file").into());
                }
                got += data.len() as u64;
                in_window += 1;
                let last = data.len() < blksize;
                if last || in_window >= window {
                    let k = ack(block);
                    sock.send_to(&k, to).map_err(|e| e.to_string())?;
                    last_ack = Some(k);
                    in_window = 0;
                }
                expected = expected.wrapping_add(1);
                if last {
                    if got != a.expect.len() as u64 {
                        return Err(format!("got {got} bytes, expected {}", a.expect.len()).into());
                    }
                    return Ok(got);
                }
            }
            _ => {}
        }
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One transfer's outcome: the result, its "busy" answers, its time in ms.
type Outcome = (Result<u64, String>, u32, f64);

fn timed(a: &Args, bind: Ipv4Addr, jitter_ms: u64) -> Outcome {
    let t = Instant::now();
    let (r, busy) = transfer_retrying(a, bind, jitter_ms);
    (r, busy, t.elapsed().as_secs_f64() * 1000.0)
}

/// One batch: a single transfer on this thread, or `parallel` threads released together.
/// A lone transfer stays on the main thread, so the repeats of a run come from one
/// thread, as one device fetches one file after another: a thread started per transfer
/// is placed afresh by the scheduler each time, often on the CPU of a server's
/// long-lived thread, and on this 2-CPU machine that alone made a 1 MiB transfer from
/// ztp-runtime several times slower (tftpd-hpa forks a process per transfer, which the
/// scheduler spreads anyway). `--thread-per-transfer` measures it the old way.
fn batch(a: &Arc<Args>) -> (Vec<std::thread::Result<Outcome>>, f64) {
    let bind_of = |i: usize| a.bind_base.map_or(Ipv4Addr::UNSPECIFIED, |b| Ipv4Addr::from(u32::from(b) + i as u32));
    if a.parallel == 1 && !a.thread_per_transfer {
        let t0 = Instant::now();
        let r = timed(a, bind_of(0), 0);
        return (vec![Ok(r)], t0.elapsed().as_secs_f64());
    }
    let barrier = Arc::new(Barrier::new(a.parallel + 1));
    let handles: Vec<_> = (0..a.parallel)
        .map(|i| {
            let (a, barrier, bind) = (Arc::clone(a), Arc::clone(&barrier), bind_of(i));
            std::thread::spawn(move || {
                barrier.wait();
                timed(&a, bind, (i % 16) as u64)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let results = handles.into_iter().map(|h| h.join()).collect();
    (results, t0.elapsed().as_secs_f64())
}

fn main() {
    let a = Arc::new(parse_args());
    let mut any_failed = false;
    for batch_no in 0..a.repeat {
        let (results, wall) = batch(&a);
        let (mut bytes, mut ok, mut failed, mut ms, mut first_err) = (0u64, 0, 0, Vec::new(), None);
        let mut busy = 0u32;
        for r in results {
            if let Ok((_, b, _)) = &r {
                busy += b;
            }
            match r {
                Ok((Ok(n), _, t)) => {
                    bytes += n;
                    ok += 1;
                    ms.push(t);
                }
                Ok((Err(e), _, _)) => {
                    failed += 1;
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    failed += 1;
                    first_err.get_or_insert("client thread panicked".to_string());
                }
            }
        }
        ms.sort_by(|x, y| x.total_cmp(y));
        println!(
            "batch={batch_no} wall_s={wall:.6} bytes={bytes} ok={ok} failed={failed} busy={busy} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            pct(&ms, 0.5),
            pct(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0)
        );
        if let Some(e) = first_err {
            println!("error: {e}");
            any_failed = true;
        }
    }
    std::process::exit(i32::from(any_failed));
}
