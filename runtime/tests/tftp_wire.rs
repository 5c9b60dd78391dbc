//! TFTP over the wire on 127.0.0.1: real clients (curl, atftp) at several block and
//! window sizes, windows capped in bytes at large blksize, a transfer held across a
//! generation swap, the transfer caps, and the path-traversal table, all against the dc1
//! example compiled in memory.

// Tests may unwrap (clippy.toml allows it in #[test] fns; the helpers here too).
#![allow(clippy::unwrap_used)]

#[path = "files_support.rs"]
mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::*;
use ztp_runtime::state::State;
use ztp_runtime::tftp::{MAX_PER_CLIENT, MAX_WINDOW_BYTES};

const TREE_LEN: usize = 300_001;
const IMAGE_LEN: usize = 1_000_003;

async fn setup() -> (tempfile::TempDir, Arc<State>, SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dc1_copy(tmp.path(), TREE_LEN, IMAGE_LEN, 1);
    let state = State::new(build(&dir));
    let addr = start_tftp(Arc::clone(&state)).await;
    (tmp, state, addr)
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_every_kind_of_file_at_each_blksize() {
    if !oracle("curl") {
        return;
    }
    let (tmp, state, addr) = setup().await;
    let g = state.current();
    for path in ["ztp.json", BIG_TREE, IMAGE] {
        let want = tree_bytes(&g, path);
        for blk in ["512", "1468", "8192", "65464"] {
            let out = tmp.path().join(format!("out-{blk}"));
            let url = format!("tftp://{addr}/{path}");
            let o = out.to_str().unwrap().to_string();
            let args = ["-sS", "--max-time", "60", "--tftp-blksize", blk, "-o", &o, &url].map(String::from);
            let (ok, err) = blocking(move || run("curl", &args)).await.unwrap();
            assert!(ok, "curl {path} blksize {blk}: {err}");
            assert!(std::fs::read(&out).unwrap() == want, "{path} at blksize {blk}: bytes differ");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_reads_with_blksize_and_windowsize() {
    if !oracle("atftp") {
        return;
    }
    let (tmp, state, addr) = setup().await;
    let g = state.current();
    let cases = [
        ("512", None),
        ("1468", None),
        ("8192", None),
        ("512", Some("16")),
        ("1468", Some("16")),
        ("8192", Some("16")),
    ];
    for path in [BIG_TREE, IMAGE] {
        let want = tree_bytes(&g, path);
        for (blk, win) in cases {
            let out = tmp.path().join("atftp.out");
            let _ = std::fs::remove_file(&out);
            let mut args = vec!["--option".to_string(), format!("blksize {blk}")];
            if let Some(w) = win {
                args.extend(["--option".to_string(), format!("windowsize {w}")]);
            }
            let (host, port) = (addr.ip().to_string(), addr.port().to_string());
            let o = out.to_str().unwrap().to_string();
            args.extend(["-g", "-r", path, "-l", &o, &host, &port].map(String::from));
            let (ok, err) = blocking(move || run("atftp", &args)).await.unwrap();
            let got = std::fs::read(&out).unwrap_or_default();
            assert!(
                ok && got == want,
                "atftp {path} blksize {blk} window {win:?}: ok={ok} {} of {} bytes; {err}",
                got.len(),
                want.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_in_flight_keeps_its_generation() {
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    let len = 2_000_000;
    let dir_a = dc1_copy(tmp_a.path(), len, IMAGE_LEN, 1);
    let a = build(&dir_a);
    let (old_tree, old_image) = (tree_bytes(&a, BIG_TREE), tree_bytes(&a, IMAGE));
    let state = State::new(a);
    let addr = start_tftp(Arc::clone(&state)).await;
    let dir_b = dc1_copy(tmp_b.path(), len, IMAGE_LEN, 2);
    let (new_tree, new_image) = {
        let b = build(&dir_b);
        (tree_bytes(&b, BIG_TREE), tree_bytes(&b, IMAGE))
    };
    assert!(old_tree != new_tree && old_image != new_image);

    for (path, old, new) in [(BIG_TREE, &old_tree, &new_tree), (IMAGE, &old_image, &new_image)] {
        state.swap(build(&dir_a));
        let (s, d) = (Arc::clone(&state), dir_b.clone());
        // The swap happens after block 1 arrived and before it is acknowledged.
        let got =
            blocking(move || tftp_read(addr, path.as_bytes(), Some(1468), move || drop(s.swap(build(&d)))))
                .await
                .unwrap()
                .unwrap();
        assert!(&got == old, "{path}: a transfer across a swap must finish with the old bytes");
        let again =
            blocking(move || tftp_read(addr, path.as_bytes(), Some(1468), || ())).await.unwrap().unwrap();
        assert!(&again == new, "{path}: a transfer after the swap gets the new bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_per_client_are_capped() {
    let (_tmp, state, addr) = setup().await;
    let want = tree_bytes(&state.current(), BIG_TREE);
    let started = Arc::new(Barrier::new(MAX_PER_CLIENT + 1));
    let release = Arc::new(Barrier::new(MAX_PER_CLIENT + 1));
    let held: Vec<_> = (0..MAX_PER_CLIENT)
        .map(|_| {
            let (s, r) = (Arc::clone(&started), Arc::clone(&release));
            std::thread::spawn(move || {
                tftp_read(addr, BIG_TREE.as_bytes(), Some(8192), move || {
                    s.wait();
                    r.wait();
                })
            })
        })
        .collect();
    let s = Arc::clone(&started);
    blocking(move || s.wait()).await.unwrap();
    let over = blocking(move || tftp_read(addr, b"ztp.json", None, || ())).await.unwrap();
    assert_eq!(over, Err((0, "server busy, retry later".to_string())));
    let r = Arc::clone(&release);
    blocking(move || r.wait()).await.unwrap();
    for h in held {
        assert!(h.join().unwrap().unwrap() == want);
    }
    // The slots are given back when the transfers end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(blocking(move || tftp_read(addr, b"ztp.json", None, || ())).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_writes_are_refused() {
    let (_tmp, state, addr) = setup().await;
    let ztp = tree_bytes(&state.current(), "ztp.json");
    for ok in [&b"ztp.json"[..], b"/ztp.json", b"./ztp.json", b"//ztp.json"] {
        let got = blocking(move || tftp_read(addr, ok, None, || ())).await.unwrap();
        assert_eq!(got.as_deref().ok(), Some(&ztp[..]), "{}", String::from_utf8_lossy(ok));
    }
    let long = format!("devices/{}", "a".repeat(600));
    // (name, expected error code): 0 = refused by path rules, 1 = no such file.
    let table: Vec<(Vec<u8>, Option<u16>)> = vec![
        (b"../etc/passwd".to_vec(), Some(0)),
        (b"..".to_vec(), Some(0)),
        (b"/devices/../../etc/passwd".to_vec(), Some(0)),
        (b"%2e%2e/%2e%2e/etc/passwd".to_vec(), Some(1)),
        (b"%252e%252e/ztp.json".to_vec(), Some(1)),
        (b"custom\\..\\..\\etc\\passwd".to_vec(), Some(0)),
        (b"/etc/passwd".to_vec(), Some(1)),
        (b"devices/\x01x".to_vec(), Some(0)),
        (long.into_bytes(), Some(0)),
        // A NUL ends the name on the wire: the rest is read as the mode, which is not a
        // mode, so the request is dropped and no data ever arrives.
        (b"ztp\0.json".to_vec(), None),
    ];
    let checks: Vec<_> = table
        .into_iter()
        .map(|(name, want)| {
            blocking(move || {
                let got = tftp_read(addr, &name, None, || ());
                (name, want, got)
            })
        })
        .collect();
    for c in checks {
        let (name, want, got) = c.await.unwrap();
        let shown = String::from_utf8_lossy(&name[..name.len().min(40)]).to_string();
        let Err((code, msg)) = got else { panic!("{shown:?} was served") };
        match want {
            Some(0) => assert!(code == 0 && msg.starts_with("refused: "), "{shown:?}: {code} {msg}"),
            Some(w) => assert_eq!(code, w, "{shown:?}: {msg}"),
            None => assert_eq!(code, 999, "{shown:?}: {msg}"),
        }
    }

    // A write request gets "access violation" (code 2) and writes nothing.
    let reply = blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(b"\0\x02ztp.json\0octet\0", addr).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    })
    .await
    .unwrap();
    assert_eq!(&reply[..4], &[0, 5, 0, 2], "{reply:?}");
    assert!(tree_bytes(&state.current(), "ztp.json") == ztp);
}

/// What a windowed read saw: the bytes, the options the OACK granted, and how often a
/// block went missing (a gap in the sequence, or a wait that timed out).
#[derive(Debug)]
struct Windowed {
    data: Vec<u8>,
    blksize: usize,
    window: usize,
    gaps: u32,
    timeouts: u32,
}

/// An RFC 7440 read client: asks for `blksize` and `windowsize`, acknowledges the last
/// block of each granted window, and on a gap or a timeout acknowledges the last block
/// it has in order (the server resumes after it). Gives up after 5 timeouts (5 s each) or 60 s.
fn windowed_read(addr: SocketAddr, name: &str, blksize: u16, windowsize: u16) -> Result<Windowed, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rrq = format!("\0\x01{name}\0octet\0blksize\0{blksize}\0windowsize\0{windowsize}\0");
    sock.send_to(rrq.as_bytes(), addr).unwrap();
    let mut w = Windowed { data: Vec::new(), blksize: 512, window: 1, gaps: 0, timeouts: 0 };
    let (mut peer, mut oack, mut want, mut in_window, mut nacked) = (None, false, 1u16, 0usize, false);
    let mut buf = vec![0u8; 65536];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                w.timeouts += 1;
                if w.timeouts > 5 {
                    return Err(format!("timed out after {} bytes", w.data.len()));
                }
                let k = want.wrapping_sub(1).to_be_bytes();
                match peer {
                    Some(to) => sock.send_to(&[0, 4, k[0], k[1]], to).unwrap(),
                    None => sock.send_to(rrq.as_bytes(), addr).unwrap(),
                };
                in_window = 0;
                continue;
            }
        };
        if *peer.get_or_insert(from) != from || n < 4 {
            continue;
        }
        let p = &buf[..n];
        match u16::from_be_bytes([p[0], p[1]]) {
            5 => return Err(format!("server error: {}", String::from_utf8_lossy(&p[4..]))),
            6 if !oack => {
                oack = true;
                let fields: Vec<&[u8]> = p[2..].split(|b| *b == 0).collect();
                for kv in fields.chunks(2) {
                    let v = || String::from_utf8_lossy(kv[1]).parse::<usize>().unwrap();
                    match kv[0].to_ascii_lowercase().as_slice() {
                        b"blksize" => w.blksize = v(),
                        b"windowsize" => w.window = v(),
                        _ => {}
                    }
                }
                sock.send_to(&[0, 4, 0, 0], from).unwrap();
            }
            3 => {
                let block = u16::from_be_bytes([p[2], p[3]]);
                if block != want {
                    // Once per gap, or every resend would be answered twice.
                    if !nacked {
                        w.gaps += 1;
                        let k = want.wrapping_sub(1).to_be_bytes();
                        sock.send_to(&[0, 4, k[0], k[1]], from).unwrap();
                        (nacked, in_window) = (true, 0);
                    }
                    continue;
                }
                nacked = false;
                w.data.extend_from_slice(&p[4..]);
                in_window += 1;
                let last = n - 4 < w.blksize;
                if last || in_window == w.window {
                    sock.send_to(&[0, 4, p[2], p[3]], from).unwrap();
                    in_window = 0;
                }
                if last {
                    return Ok(w);
                }
                want = want.wrapping_add(1);
            }
            _ => {}
        }
    }
    Err(format!("no end after 60 s ({} bytes)", w.data.len()))
}

/// A window is sent as one burst; at large blksize the server grants fewer blocks so the
/// burst fits a default UDP receive buffer, and the transfer runs without a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_capped_in_bytes_at_large_blksize() {
    let (_tmp, state, addr) = setup().await;
    let g = state.current();
    let bytes = MAX_WINDOW_BYTES as usize;
    // (blksize asked, windowsize asked, windowsize the OACK must grant)
    let cases: [(u16, u16, usize); 5] =
        [(8192, 16, bytes / 8192), (1468, 16, 16), (512, 16, 16), (8192, 4, 4), (65464, 16, 1)];
    assert_eq!(bytes / 8192, 8, "the byte cap this test was written for");
    for path in [BIG_TREE, IMAGE] {
        let want = tree_bytes(&g, path);
        for (blk, win, granted) in cases {
            let r = blocking(move || windowed_read(addr, path, blk, win)).await.unwrap();
            let r = r.unwrap_or_else(|e| panic!("{path} blksize {blk} window {win}: {e}"));
            let what = format!("{path} blksize {blk} window {win}");
            assert_eq!((r.blksize, r.window), (blk as usize, granted), "{what}: the OACK");
            assert!(r.data == want, "{what}: {} of {} bytes, or they differ", r.data.len(), want.len());
            // Loopback loses nothing unless a burst overflows the receive buffer.
            assert_eq!((r.gaps, r.timeouts), (0, 0), "{what}: blocks were lost");
        }
    }
}

/// The server resends an unacknowledged block after the client's `timeout` (RFC 2349),
/// again after a resend went unanswered, and never while ACKs keep coming in time, even
/// when the transfer outlasts the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_after_the_timeout_and_only_then() {
    let (_tmp, state, addr) = setup().await;
    let want = tree_bytes(&state.current(), BIG_TREE);
    let r = blocking(move || -> Result<(), String> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let rrq = format!("\0\x01{BIG_TREE}\0octet\0timeout\01\0");
        sock.send_to(rrq.as_bytes(), addr).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut recv = || {
            let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("no packet: {e}"))?;
            Ok::<_, String>((u16::from_be_bytes([buf[0], buf[1]]), buf[2..n].to_vec(), from, Instant::now()))
        };
        let (op, _, from, _) = recv()?;
        assert_eq!(op, 6, "OACK first");
        sock.send_to(&[0, 4, 0, 0], from).unwrap();
        // Block 1 three times: unanswered, it comes back a timeout later, twice.
        let mut at = Vec::new();
        for _ in 0..3 {
            let (op, data, _, t) = recv()?;
            assert_eq!((op, &data[..2]), (3, &[0u8, 1][..]), "block 1 again");
            assert!(data[2..] == want[..512]);
            at.push(t);
        }
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
                "resent after {gap:?}"
            );
        }
        // Then ACKs 400 ms apart for 2 s: each in time, so no block comes twice.
        sock.send_to(&[0, 4, 0, 1], from).unwrap();
        for k in 2u16..=6 {
            let (op, data, _, _) = recv()?;
            assert_eq!((op, u16::from_be_bytes([data[0], data[1]])), (3, k), "the next block, not a resend");
            std::thread::sleep(Duration::from_millis(400));
            let b = k.to_be_bytes();
            sock.send_to(&[0, 4, b[0], b[1]], from).unwrap();
        }
        let (op, data, _, _) = recv()?;
        assert_eq!((op, u16::from_be_bytes([data[0], data[1]])), (3, 7));
        Ok(())
    })
    .await
    .unwrap();
    r.unwrap();
}

/// While the server waits for an ACK, nothing else stretches the wait: datagrams from
/// another address (a stranger aiming at the transfer's port) are not the client's and
/// change nothing, and the client's own stray packets (an ACK outside the window,
/// garbage) are ignored without restarting the timeout; the resend still comes one
/// timeout after the block was sent, and then the transfer completes byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strays_neither_disturb_a_transfer_nor_stretch_its_timeout() {
    let (_tmp, state, addr) = setup().await;
    let want = tree_bytes(&state.current(), BIG_TREE);
    let r = blocking(move || -> Result<(), String> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let rrq = format!("\0\x01{BIG_TREE}\0octet\0timeout\01\0blksize\01400\0");
        sock.send_to(rrq.as_bytes(), addr).unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, tid) = sock.recv_from(&mut buf).map_err(|e| format!("no OACK: {e}"))?;
        assert_eq!(&buf[..2], &[0, 6], "OACK first: {:?}", &buf[..n]);
        sock.send_to(&[0, 4, 0, 0], tid).unwrap();
        let (n, _) = sock.recv_from(&mut buf).map_err(|e| format!("no block 1: {e}"))?;
        let first = Instant::now();
        assert_eq!(&buf[..4], &[0, 3, 0, 1]);
        assert!(buf[4..n] == want[..1400]);
        // For 1.5 timeouts: ACKs from a stranger (in the window: they would move it on
        // if taken), and from the client an ACK past the window and a malformed packet.
        // Sent from another thread, so that this one sees when the resend comes.
        let mine = sock.try_clone().unwrap();
        let strays = std::thread::spawn(move || {
            for i in 0..6 {
                std::thread::sleep(Duration::from_millis(250));
                stranger.send_to(&[0, 4, 0, 1], tid).unwrap();
                mine.send_to(if i % 2 == 0 { &[0, 4, 0, 9][..] } else { &[0, 9, 1][..] }, tid).unwrap();
            }
        });
        // Block 1 came back once, about a timeout after the first send, and nothing
        // else arrived (no block 2: the stranger's ACK was not taken).
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut resent = Vec::new();
        while first.elapsed() < Duration::from_millis(1800) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                assert_eq!(from, tid);
                resent.push((buf[..n.min(4)].to_vec(), first.elapsed()));
            }
        }
        strays.join().unwrap();
        assert_eq!(resent.len(), 1, "one resend while strays came in: {resent:?}");
        assert_eq!(resent[0].0, [0, 3, 0, 1], "block 1 again");
        let at = resent[0].1;
        assert!(at >= Duration::from_millis(900) && at < Duration::from_millis(1400), "resent after {at:?}");
        // Then the transfer runs to its end with every byte right.
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = want[..1400].to_vec();
        sock.send_to(&[0, 4, 0, 1], tid).unwrap();
        loop {
            let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("stalled at {}: {e}", got.len()))?;
            assert_eq!(from, tid);
            let block = u16::from_be_bytes([buf[2], buf[3]]);
            if usize::from(block) != got.len() / 1400 + 1 {
                continue; // a resend of one already had
            }
            got.extend_from_slice(&buf[4..n]);
            sock.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
            if n - 4 < 1400 {
                break;
            }
        }
        assert!(got == want, "{} bytes, {} expected", got.len(), want.len());
        Ok(())
    })
    .await
    .unwrap();
    r.unwrap();
}

/// Block numbers wrap from 65535 to 0 (RFC 1350 leaves it to the implementations; curl,
/// atftp and tftpd-hpa all wrap): a file of over 65,535 blocks goes through byte-exact
/// in lockstep and in windows, including a window size that makes a window straddle the
/// wrap, with no gap or timeout (the ACK arithmetic across the wrap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_numbers_wrap_past_65535() {
    let (_tmp, state, addr) = setup().await;
    let want = tree_bytes(&state.current(), IMAGE);
    // (blksize, windowsize): 66,667 blocks in lockstep; 125,001 in windows of 7 (65536
    // is not a multiple of 7) and of 16.
    for (blk, win) in [(15u16, 1u16), (8, 7), (8, 16)] {
        assert!(want.len() / usize::from(blk) > 65_535, "the file must outlast the block numbers");
        let r = blocking(move || windowed_read(addr, IMAGE, blk, win)).await.unwrap();
        let r = r.unwrap_or_else(|e| panic!("blksize {blk} window {win}: {e}"));
        assert_eq!((r.blksize, r.window), (usize::from(blk), usize::from(win)), "the OACK");
        assert!(
            r.data == want,
            "blksize {blk} window {win}: {} of {} bytes, or they differ",
            r.data.len(),
            want.len()
        );
        assert_eq!((r.gaps, r.timeouts), (0, 0), "blksize {blk} window {win}: blocks were lost");
    }
}

/// Dropping the server's future (as the runtime does on shutdown) ends the transfers in
/// flight too, though each runs on a thread of its own: a transfer waiting for an ACK
/// sends nothing more once the timeout it was waiting out has passed (without the stop,
/// it would resend block 1 every second up to MAX_RETRIES times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_ends_its_transfers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dc1_copy(tmp.path(), TREE_LEN, IMAGE_LEN, 1);
    let state = State::new(build(&dir));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server =
        tokio::spawn(ztp_runtime::tftp::serve(Arc::clone(&state), "127.0.0.1:0".parse().unwrap(), tx));
    let addr = rx.await.unwrap();
    let sock = blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(format!("\0\x01{BIG_TREE}\0octet\0timeout\01\0").as_bytes(), addr).unwrap();
        let mut buf = [0u8; 1024];
        let (_, tid) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 6], "OACK");
        sock.send_to(&[0, 4, 0, 0], tid).unwrap();
        sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1], "block 1");
        // Unacknowledged, block 1 comes again a second later: the transfer is alive.
        sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0, 3, 0, 1], "block 1 resent");
        sock
    })
    .await
    .unwrap();
    server.abort();
    let _ = server.await;
    let late = blocking(move || {
        // At most one resend can be on its way (the stop is seen before the next send,
        // at most one timeout later); after 1.5 s there must be silence.
        let mut buf = [0u8; 1024];
        let t0 = Instant::now();
        let mut late = 0;
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        while t0.elapsed() < Duration::from_millis(4500) {
            if sock.recv_from(&mut buf).is_ok() && t0.elapsed() > Duration::from_millis(1500) {
                late += 1;
            }
        }
        late
    })
    .await
    .unwrap();
    assert_eq!(late, 0, "packets from a stopped server");
}

/// An image cut short on disk while a transfer reads it (one positioned read per 64 KiB
/// on the transfer's thread): the client gets a TFTP error, never a short file that
/// looks complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_truncated_mid_transfer_ends_in_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dc1_copy(tmp.path(), TREE_LEN, IMAGE_LEN, 1);
    let state = State::new(build(&dir));
    let addr = start_tftp(Arc::clone(&state)).await;
    let image = dir.join(IMAGE);
    let r = blocking(move || -> Result<(u16, usize), String> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(format!("\0\x01{IMAGE}\0octet\0").as_bytes(), addr).unwrap();
        let mut buf = [0u8; 1024];
        let mut got = 0usize;
        loop {
            let (n, tid) = sock.recv_from(&mut buf).map_err(|e| format!("after {got} bytes: {e}"))?;
            let op = u16::from_be_bytes([buf[0], buf[1]]);
            if op != 3 {
                return Ok((op, got));
            }
            if usize::from(u16::from_be_bytes([buf[2], buf[3]])) == got / 512 + 1 {
                got += n - 4;
            }
            if got == 512 {
                // Block 1 came from the first 64 KiB read: cut the file to 100 KiB, so
                // the second read (bytes 64 KiB..128 KiB) comes up short.
                std::fs::OpenOptions::new().write(true).open(&image).unwrap().set_len(100 * 1024).unwrap();
            }
            if n - 4 < 512 {
                return Ok((3, got));
            }
            sock.send_to(&[0, 4, buf[2], buf[3]], tid).unwrap();
        }
    })
    .await
    .unwrap();
    let (op, got) = r.unwrap();
    assert_eq!(op, 5, "an ERROR packet, after {got} bytes");
    assert_eq!(got, 64 * 1024, "every byte of the first read went out, and no more");
}
