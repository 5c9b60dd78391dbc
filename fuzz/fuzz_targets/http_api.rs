//! HTTP: the input is the raw bytes a client sends on one connection, served by the
//! real connection handler (hyper with the runtime's limits, the router, the status
//! API and its SQLite store, the file tree of examples/lab) over an in-memory pipe. The
//! peer is a device address of the lab fabric, so its own reports are accepted.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ztp_runtime::http::Ctx;

struct World {
    rt: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    // tmpfs when there is one: the store syncs every report. A static is never
    // dropped, so each run removes what earlier runs (dead processes) left behind.
    let base =
        if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("ztp-fuzz-http-")
                && !std::path::Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("ztp-fuzz-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("state dir");
    let state = ztp_runtime::state::State::new(ztp_fuzz::generation("lab"));
    let store = Arc::new(ztp_runtime::status::Store::open(&dir).expect("store"));
    let services = Arc::new(ztp_runtime::services::Services::default());
    let agents = rt.block_on(async {
        ztp_runtime::agent::Agents::new(
            state.clone(),
            store.clone(),
            ztp_fuzz::repo().join("examples").join("lab"),
            ztp_runtime::agent::AgentConfig::from_env(),
        )
    });
    let ctx = Arc::new(Ctx { state, store, services, admin_token: Some("fuzz-admin-token".into()), agents });
    World { rt, ctx }
});

fuzz_target!(|data: &[u8]| {
    let w = &*WORLD;
    let peer: SocketAddr = "10.99.0.11:40000".parse().expect("peer");
    w.rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let conn = tokio::spawn(ztp_runtime::http::serve_conn(w.ctx.clone(), peer, server));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        // Bounded: a request that keeps the connection open past this is a hang.
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the connection did not finish within 5 s");
        if std::env::var_os("ZTP_FUZZ_SHOW").is_some() {
            // For checking the harness: the status lines the server sent.
            let text = String::from_utf8_lossy(&out);
            let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
            eprintln!("{heads:?}");
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    });
});
