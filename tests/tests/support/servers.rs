//! The three DHCP servers, each run for real inside the server namespace from one
//! `ztpc build` directory: ISC dhcpd with `dhcpd.conf`, Kea with `kea-dhcp4.json`, and
//! ztp-runtime with `--artifacts`. Each is stopped by its PID when dropped.
//!
//! dhcpd and Kea run from copies of the generated files, changed only where a file
//! names a place on this machine or how long to wait, never what is answered:
//! - dhcpd.conf gets `ping-check false;` (dhcpd otherwise pings each free address and
//!   waits a second for no reply before offering it);
//! - kea-dhcp4.json gets the namespace's interface, a lease file and log file in the
//!   scratch directory, and no lease file cleanup process (`lfc-interval` 0).
//!
//! ztp-runtime runs as this test binary re-executed under `ip netns exec` (the helper
//! test calls [`runtime_main`]): the same `ztp_runtime::cli` code path as the
//! `ztp-runtime` binary, which a test of another crate cannot name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::SERVER_IF;

/// The helper test's environment variable: the runtime's arguments, one per line.
pub const RUNTIME_ENV: &str = "ZTP_THREE_WAY_RUNTIME";
/// The helper test's name in three_way.rs.
pub const RUNTIME_HELPER: &str = "three_way_runtime_helper";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dhcpd,
    Kea,
    Runtime,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Dhcpd, Kind::Kea, Kind::Runtime];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Dhcpd => "dhcpd",
            Kind::Kea => "kea",
            Kind::Runtime => "ztp-runtime",
        }
    }
}

pub struct Server {
    child: Child,
    pub kind: Kind,
    /// Where its log goes, shown when something disagrees.
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Start `kind` in namespace `ns` serving `out` (a `ztpc build` directory); scratch
/// files go to `work`. Returns once the server holds UDP port 67.
pub fn start(kind: Kind, ns: &str, server_ip: std::net::Ipv4Addr, out: &Path, work: &Path) -> Server {
    let dir = work.join(kind.name());
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let log = dir.join("log");
    let logf = || std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    match kind {
        Kind::Dhcpd => {
            let conf = dir.join("dhcpd.conf");
            let text = std::fs::read_to_string(out.join("dhcpd.conf")).expect("dhcpd.conf");
            std::fs::write(&conf, format!("ping-check false;\n{text}")).expect("write dhcpd.conf");
            let leases = dir.join("dhcpd.leases");
            std::fs::write(&leases, "").expect("lease file");
            // -d: log to stderr (and stay in the foreground); no -q, it hides errors.
            cmd.args(["dhcpd", "-f", "-d", "-4", "-cf"])
                .arg(&conf)
                .arg("-lf")
                .arg(&leases)
                .arg("-pf")
                .arg(dir.join("dhcpd.pid"))
                .arg(SERVER_IF);
            cmd.stdout(Stdio::null()).stderr(logf());
        }
        Kind::Kea => {
            let text = std::fs::read_to_string(out.join("kea-dhcp4.json")).expect("kea-dhcp4.json");
            let mut v: serde_json::Value = serde_json::from_str(&text).expect("kea json");
            let d = &mut v["Dhcp4"];
            d["interfaces-config"]["interfaces"] = serde_json::json!([SERVER_IF]);
            d["lease-database"]["name"] = dir.join("kea-leases4.csv").display().to_string().into();
            d["lease-database"]["lfc-interval"] = 0.into();
            d["loggers"] = serde_json::json!([{
                "name": "kea-dhcp4",
                "output_options": [{ "output": log.display().to_string() }],
                "severity": "DEBUG",
                "debuglevel": 99
            }]);
            let conf = dir.join("kea-dhcp4.json");
            std::fs::write(&conf, serde_json::to_string_pretty(&v).expect("json")).expect("write kea");
            cmd.args(["kea-dhcp4", "-c"])
                .arg(&conf)
                .env("KEA_LOCKFILE_DIR", "none")
                .env("KEA_PIDFILE_DIR", &dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        Kind::Runtime => {
            let args = [
                "--artifacts".to_string(),
                out.display().to_string(),
                "--state".into(),
                dir.join("state").display().to_string(),
                "--dhcp-listen".into(),
                "0.0.0.0:67".into(),
                "--tftp-listen".into(),
                format!("{server_ip}:69"),
                "--http-listen".into(),
                format!("{server_ip}:80"),
            ];
            cmd.arg(std::env::current_exe().expect("test binary"))
                .args(["--exact", RUNTIME_HELPER, "--nocapture", "--test-threads=1"])
                .env(RUNTIME_ENV, args.join("\n"))
                .env("ZTP_LOG", "debug")
                .stdout(Stdio::null())
                .stderr(logf());
        }
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
    let mut server = Server { child, kind, log };
    wait_for_port_67(&mut server, ns);
    server
}

/// Poll (bounded) until something in `ns` holds UDP port 67; fail if the server exits.
fn wait_for_port_67(s: &mut Server, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("{} exited at start ({st}):\n{}", s.kind.name(), s.log_tail());
        }
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hlun", "sport = :67"])
            .output()
            .expect("run ss");
        if !out.stdout.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{} did not bind port 67:\n{}", s.kind.name(), s.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The body of the runtime helper test: `ztp-runtime` with the arguments in
/// [`RUNTIME_ENV`], for at most two minutes (it is killed long before).
pub fn runtime_main(args: &str) {
    use clap::Parser;
    let cli = ztp_runtime::cli::Cli::parse_from(std::iter::once("ztp-runtime").chain(args.lines()));
    ztp_runtime::cli::init_logging(cli.log_format);
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    rt.block_on(async {
        tokio::select! {
            r = ztp_runtime::cli::run(cli) => panic!("ztp-runtime stopped: {r:?}"),
            _ = tokio::time::sleep(Duration::from_secs(120)) => {}
        }
    });
}
