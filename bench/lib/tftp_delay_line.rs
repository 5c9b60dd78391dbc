//! A one-way delay line between two TUN devices, for bench/tftp's round-trip case: this
//! kernel has no sch_netem (nor fq, for a BPF departure-time delay), so the delay is
//! made here, in user space.
//!
//! Built by bench/tftp with `rustc -O` (std only; ioctl and prctl declared below).
//!
//! Usage:
//!   tftp_delay_line --a TUN --b TUN --delay-us N --max-seconds N [--stats FILE]
//!
//! Attaches to the two existing TUN devices A and B (made with `ip tuntap add ... mode
//! tun`, in the namespace this runs in; the bench then moves B to the server's
//! namespace, which keeps this attachment) and prints "ready". Every packet read from
//! one is written to the other DELAY-US after it was read, in order; packets in flight
//! overlap (a propagation delay, not a rate limit). One reader and one writer thread
//! per direction. Exits by itself after MAX-SECONDS (a bound if the bench dies). Every
//! second it rewrites FILE with, per direction, the packets forwarded and the delay
//! they really got (its sum and max in µs: the writer sleeps until each packet is due,
//! and a sleep ends late by the scheduler's wake-up time).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn prctl(option: i32, ...) -> i32;
}

const TUNSETIFF: u64 = 0x4004_54ca;
const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;
const PR_SET_TIMERSLACK: i32 = 29;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

fn usage(msg: &str) -> ! {
    eprintln!("tftp_delay_line: {msg}");
    std::process::exit(2)
}

fn open_tun(name: &str) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .unwrap_or_else(|e| usage(&format!("/dev/net/tun: {e}")));
    if name.is_empty() || name.len() > 15 {
        usage("a TUN name is 1 to 15 bytes");
    }
    let mut req = IfReq { name: [0; 16], flags: IFF_TUN | IFF_NO_PI, _pad: [0; 22] };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which IfReq lays out.
    let rc = unsafe { ioctl(f.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc != 0 {
        usage(&format!("attach to {name}: {}", std::io::Error::last_os_error()));
    }
    f
}

/// Per direction: packets forwarded, the sum and max of their real delay in µs.
#[derive(Default)]
struct Stats {
    packets: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

fn forward(mut from: File, mut to: File, delay: Duration, stats: Arc<Stats>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => usage(&format!("read: {e}")),
            }
        }
    });
    std::thread::spawn(move || {
        // A sleep may end this much past its time (default 50 µs): make it 1 µs.
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long.
        unsafe { prctl(PR_SET_TIMERSLACK, 1000u64) };
        while let Ok((read_at, p)) = rx.recv() {
            let due = read_at + delay;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // A full TUN queue drops, as a link would; nothing to do about it here.
            let _ = to.write(&p);
            let us = read_at.elapsed().as_micros() as u64;
            stats.packets.fetch_add(1, Ordering::Relaxed);
            stats.sum_us.fetch_add(us, Ordering::Relaxed);
            stats.max_us.fetch_max(us, Ordering::Relaxed);
        }
    });
}

fn main() {
    let mut a = std::env::args().skip(1);
    let (mut ta, mut tb, mut delay_us, mut max_s, mut stats_file) = (None, None, None, None, None);
    while let Some(k) = a.next() {
        let v = a.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("{k}: not a number: {v}")));
        match k.as_str() {
            "--a" => ta = Some(v),
            "--b" => tb = Some(v),
            "--delay-us" => delay_us = Some(num(&v)),
            "--max-seconds" => max_s = Some(num(&v)),
            "--stats" => stats_file = Some(v),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    let (Some(ta), Some(tb), Some(delay_us), Some(max_s)) = (ta, tb, delay_us, max_s) else {
        usage("--a, --b, --delay-us and --max-seconds are required")
    };
    let delay = Duration::from_micros(delay_us);
    let (fa, fb) = (open_tun(&ta), open_tun(&tb));
    let (ab, ba) = (Arc::new(Stats::default()), Arc::new(Stats::default()));
    forward(fa.try_clone().unwrap(), fb.try_clone().unwrap(), delay, Arc::clone(&ab));
    forward(fb, fa, delay, Arc::clone(&ba));
    println!("ready");
    let _ = std::io::stdout().flush();
    let end = Instant::now() + Duration::from_secs(max_s);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(path) = &stats_file {
            let line = |name: &str, s: &Stats| {
                let (n, sum) = (s.packets.load(Ordering::Relaxed), s.sum_us.load(Ordering::Relaxed));
                format!("{name} packets={n} sum_us={sum} max_us={}\n", s.max_us.load(Ordering::Relaxed))
            };
            let text = line(&format!("{ta}->{tb}"), &ab) + &line(&format!("{tb}->{ta}"), &ba);
            let tmp = format!("{path}.tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }
}
