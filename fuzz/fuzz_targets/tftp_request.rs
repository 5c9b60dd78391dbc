//! TFTP: the datagram goes over loopback to the real server (async-tftp's request
//! parser, then our path cleaning and lookup in a real generation); a transfer it starts
//! is aborted with an ERROR packet so its slot is freed. The file name, as async-tftp
//! would read it (up to the first NUL after the opcode), also goes through
//! `paths::clean` and the generation directly, so that part is deterministic.
#![no_main]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ztp_runtime::generation::Generation;
use ztp_runtime::state::State;

struct Server {
    addr: SocketAddr,
    generation: Arc<Generation>,
    _rt: tokio::runtime::Runtime,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let state = State::new(ztp_fuzz::generation("lab"));
    let generation = state.current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.spawn(ztp_runtime::tftp::serve(state, "127.0.0.1:0".parse().expect("addr"), tx));
    let addr = rt.block_on(rx).expect("tftp server started");
    Server { addr, generation, _rt: rt }
});

static NEXT: AtomicU32 = AtomicU32::new(0);

fuzz_target!(|data: &[u8]| {
    let server = &*SERVER;
    if data.len() >= 2 {
        let name = data[2..].split(|b| *b == 0).next().unwrap_or_default();
        if let Ok(name) = std::str::from_utf8(name)
            && let Ok(clean) = ztp_runtime::paths::clean(name)
        {
            let _ = server.generation.get(&clean);
        }
    }
    // A different loopback source each time, so the per-client transfer cap is rarely
    // what answers; the server answers within a millisecond, or (garbage) never.
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
    let from = std::net::Ipv4Addr::new(127, 0, 100 + (n / 250) as u8, 1 + (n % 250) as u8);
    let Ok(sock) = UdpSocket::bind((from, 0)) else { return };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(3)));
    if sock.send_to(data, server.addr).is_err() {
        return;
    }
    let mut buf = [0u8; 70_000];
    if let Ok((n, from)) = sock.recv_from(&mut buf) {
        // DATA (3) or OACK (6): a transfer started; abort it (ERROR 0, "fuzz").
        if n >= 2 && (buf[1] == 3 || buf[1] == 6) && buf[0] == 0 {
            let _ = sock.send_to(b"\x00\x05\x00\x00fuzz\x00", from);
        }
    }
});
