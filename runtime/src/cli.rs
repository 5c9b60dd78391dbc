//! Command line of `ztp-runtime` and the start-up/shut-down sequence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::http::Ctx;
use crate::reload::{self, Source};
use crate::services::Services;
use crate::state::State;
use crate::status::Store;

/// Where a served fabric file is compiled to, in the state directory.
pub const COMPILED: &str = "compiled";

#[derive(Parser, Debug)]
#[command(
    name = "ztp-runtime",
    version,
    about = "Serve ZTP artifacts: DHCP, TFTP and HTTP, hot reload, device status",
    long_about = "Serve a fabric's zero-touch provisioning: DHCP (the answers dhcpd.conf would give), \
TFTP and HTTP (the tftp/ tree and images), the Apstra-compatible status API, and hot reload when the \
fabric file or the artifact directory changes (a bad change is refused; the old generation keeps serving).",
    after_help = "Examples:\n  ztp-runtime examples/lab/fabric.kdl            # compile into ./ztp-state/compiled, serve, watch the fabric\n  ztp-runtime --artifacts out/                    # serve a `ztpc build` directory, watch it\n  ztp-runtime --artifacts out/ --no-dhcp --http-listen 127.0.0.1:8080 --tftp-listen 127.0.0.1:6969"
)]
pub struct Cli {
    /// A fabric file to compile and watch (secrets from the environment). Each change is
    /// compiled into STATE/compiled, laid out as `ztpc build` writes it, and served from
    /// there (in memory if that directory cannot be written).
    #[arg(value_name = "FABRIC", conflicts_with = "artifacts", required_unless_present = "artifacts")]
    pub fabric: Option<PathBuf>,
    /// With FABRIC: read `(env)` secrets from KEY=VALUE lines in FILE (the process
    /// environment wins), as `ztpc build --env-file` does.
    #[arg(long, value_name = "FILE", requires = "fabric")]
    pub env_file: Option<PathBuf>,
    /// Serve a directory written by `ztpc build`, and watch it.
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Where leases and device status are kept (and, with FABRIC, its compiled tree).
    #[arg(long, value_name = "DIR", default_value = "./ztp-state")]
    pub state: PathBuf,
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:67")]
    pub dhcp_listen: SocketAddr,
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:69")]
    pub tftp_listen: SocketAddr,
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:80")]
    pub http_listen: SocketAddr,
    /// Bind DHCP to this interface (SO_BINDTODEVICE): broadcasts then leave through it,
    /// whatever the routing table says. Recommended on multi-homed servers.
    #[arg(long, value_name = "IFACE")]
    pub dhcp_interface: Option<String>,
    /// Receive syslog (UDP; RFC 3164 and 5424) here and file each message into the
    /// log of the device it came from, e.g. `0.0.0.0:514`. Off when not given.
    #[arg(long, value_name = "IP:PORT")]
    pub syslog_listen: Option<SocketAddr>,
    /// Do not serve DHCP (for sites running Kea or dhcpd with the generated config).
    #[arg(long)]
    pub no_dhcp: bool,
    /// A file holding the admin token that admin API calls (DELETE) must present.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// How long changes must settle before a reload, in milliseconds. A new artifact
    /// directory swapped in by rename (as `ztpc build` does) is loaded at once.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub reload_debounce_ms: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZTP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Start every listener and the watcher; return when Ctrl-C or SIGTERM arrives.
pub async fn run(cli: Cli) -> Result<(), String> {
    let source = match (&cli.fabric, &cli.artifacts) {
        (Some(f), _) => {
            let env = match &cli.env_file {
                Some(p) => ztpc::cli::parse_env_file(
                    &std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read --env-file {}: {e}", p.display()))?,
                ),
                None => Default::default(),
            };
            Source::Fabric(f.clone(), Arc::new(env), Some(cli.state.join(COMPILED)))
        }
        (None, Some(d)) => Source::Artifacts(d.clone()),
        (None, None) => return Err("give a fabric file or --artifacts DIR".into()),
    };
    let admin_token = match &cli.admin_token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read --admin-token-file {}: {e}", p.display()))?
                .trim()
                .to_string(),
        )
        .filter(|t| !t.is_empty()),
        None => None,
    };
    std::fs::create_dir_all(&cli.state)
        .map_err(|e| format!("state directory {}: {e}", cli.state.display()))?;
    // Watch before the first load: a change made while it loads, or while the listeners
    // start, is then loaded next instead of going unseen until the one after.
    // (A source that is not there fails both; the load's error says more.)
    let watching = reload::start(source.clone(), std::slice::from_ref(&cli.state));
    let first = {
        let s = source.clone();
        tokio::task::spawn_blocking(move || s.load()).await.map_err(|e| e.to_string())?
    }
    .map_err(|e| format!("cannot load the first generation: {e}"))?;
    let watching = watching.map_err(|e| format!("cannot watch for changes: {e}"))?;
    tracing::info!(generation = %first.id, fabric = %first.manifest.fabric, files = first.file_count(), "generation loaded");
    let state = State::new(first);
    // The load's garbage (runtime.json's text, parse buffers) is free but resident.
    crate::memory::release_free_heap();
    // A full or read-only state directory must not stop DHCP reservations and files.
    let store = Arc::new(Store::open_or_retry(&cli.state));
    let services = Arc::new(Services::default());
    let events = crate::events::start(store.clone());
    state.set_events(events.clone());
    let agents = crate::agent::Agents::new(
        state.clone(),
        store.clone(),
        crate::agent::base_dir(&source),
        crate::agent::AgentConfig::from_env(),
    );
    let ctx = Arc::new(Ctx { state: state.clone(), store, services: services.clone(), admin_token, agents });

    let mut tasks = tokio::task::JoinSet::new();
    if cli.no_dhcp {
        services.set("dhcp", "", "disabled");
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (st, dir, listen) = (state.clone(), cli.state.clone(), cli.dhcp_listen);
        services.set("dhcp", &listen.to_string(), "starting");
        let (ev, iface) = (events.clone(), cli.dhcp_interface.clone());
        tasks.spawn(async move {
            let r = crate::dhcp::server::serve_with_events(st, listen, &dir, tx, Some(ev), iface.as_deref())
                .await;
            ("dhcp", r)
        });
        announce(&services, "dhcp", rx).await?;
    }
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (st, listen) = (state.clone(), cli.tftp_listen);
        services.set("tftp", &listen.to_string(), "starting");
        tasks.spawn(async move { ("tftp", crate::tftp::serve(st, listen, tx).await) });
        announce(&services, "tftp", rx).await?;
    }
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let listen = cli.http_listen;
        services.set("http", &listen.to_string(), "starting");
        let c = ctx.clone();
        tasks.spawn(async move { ("http", crate::http::serve(c, listen, tx).await) });
        announce(&services, "http", rx).await?;
    }
    if let Some(listen) = cli.syslog_listen {
        let (tx, rx) = tokio::sync::oneshot::channel();
        services.set("syslog", &listen.to_string(), "starting");
        let (st, store) = (state.clone(), ctx.store.clone());
        tasks.spawn(async move { ("syslog", crate::syslog::serve(st, store, listen, tx).await) });
        announce(&services, "syslog", rx).await?;
    }
    services.set("status", &cli.state.join("status.sqlite").display().to_string(), "up");
    let _watch = watching.serve(state.clone(), Duration::from_millis(cli.reload_debounce_ms));

    let stop = shutdown_signal();
    tokio::select! {
        _ = stop => {
            tracing::info!("stopping: signal received");
            // Device events still queued go to the store before the process ends.
            if tokio::time::timeout(Duration::from_secs(5), events.flush()).await.is_err() {
                tracing::warn!("stopping: device events not all recorded within 5 s");
            }
            Ok(())
        }
        Some(done) = tasks.join_next() => match done {
            Ok((name, Err(e))) => Err(format!("{name} listener failed: {e}")),
            Ok((name, Ok(()))) => Err(format!("{name} listener stopped")),
            Err(e) => Err(format!("a listener panicked: {e}")),
        },
    }
}

/// Wait for a listener's real address, log it and mark the service up.
async fn announce(
    services: &Services,
    name: &str,
    rx: tokio::sync::oneshot::Receiver<SocketAddr>,
) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(addr)) => {
            tracing::info!(service = name, address = %addr, "listening");
            services.set(name, &addr.to_string(), "up");
            Ok(())
        }
        _ => Err(format!(
            "{name} listener did not start (address in use, or missing privileges for a port below 1024?)"
        )),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
