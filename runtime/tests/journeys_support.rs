//! The journey lab (included with `#[path]`; as its own test target it has no tests):
//! a server namespace holding the real `ztp-runtime` (DHCP, TFTP, HTTP on 10.77.0.5)
//! and the fake controller (the agent tests' mock, its socket opened inside that
//! namespace), and one namespace per device, cabled to the server's bridge, where
//! `ztp-emulate` plays the switch and its relay (its loopback holds the giaddr).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "agent_support.rs"]
pub mod support;

use support::{CONTROLLER_PW, Mock, start_mock_on};

pub const SERVER: &str = "10.77.0.5";
pub const DEVICE_PW: &str = "journey-device-pw";
pub const ROOT_PW: &str = "journey-root-pw";

pub fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// True (skip) without root or tools; panics instead when ZTP_REQUIRE_ORACLES=1.
pub fn cannot_run() -> bool {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    let why = if !is_root {
        Some("not root: cannot create network namespaces")
    } else if !["ip", "curl", "unshare", "chroot", "python3", "sha256sum"].iter().all(|t| have(t)) {
        Some("ip, curl, unshare, chroot, python3 or sha256sum missing")
    } else {
        None
    };
    match why {
        None => false,
        Some(w) if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") => {
            panic!("{w} and ZTP_REQUIRE_ORACLES=1")
        }
        Some(w) => {
            eprintln!("SKIPPED: {w}");
            true
        }
    }
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "failed: {cmd}");
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `zj<pid><n>`.
fn unique() -> String {
    format!("zj{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn add_ns(ns: &str) {
    std::fs::create_dir_all(format!("/etc/netns/{ns}")).unwrap();
    std::fs::write(format!("/etc/netns/{ns}/resolv.conf"), "# journey test namespace: no DNS\n").unwrap();
    sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
}

fn del_ns(ns: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
}

/// Run `f` on a thread that has entered namespace `ns` (sockets it opens stay there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        rustix::thread::move_into_link_name_space(
            fd.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        f()
    })
    .join()
    .unwrap()
}

pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Lab {
    pub srv: String,
    pub tmp: tempfile::TempDir,
    pub fabric_dir: PathBuf,
    pub mock: Mock,
    runtime: Option<Killed>,
    devices: Vec<String>,
    /// The controller URL the fabric names.
    pub controller: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.runtime.take();
        for d in &self.devices {
            del_ns(d);
        }
        del_ns(&self.srv);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The outcome of one emulator run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub record: Value,
}

impl Run {
    /// The stubbed commands of boot `n` (1-based) that change the device.
    pub fn actions(&self, boot: usize) -> Vec<String> {
        self.record["boots"][boot - 1]["commands"]
            .as_array()
            .unwrap_or_else(|| panic!("no boot {boot}: {}", self.stdout))
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .filter(|c| !is_read(c))
            .collect()
    }

    pub fn boots(&self) -> usize {
        self.record["boots"].as_array().map_or(0, Vec::len)
    }

    pub fn address(&self) -> String {
        self.record["address"].as_str().unwrap_or_default().to_string()
    }
}

/// The same split as the emulator's records.rs: reads of facts and report transport.
fn is_read(c: &str) -> bool {
    ["cli -c show ", "FastCli -p 15 -c show ", "clid show ", "decode-syseeprom", "sonic-cfggen", "show "]
        .iter()
        .any(|p| c.starts_with(p))
        || c == "nv show platform -o json"
        || (c.starts_with("cli terminal dont-ask ; copy http") && c.contains("/api/ztp/device/log?"))
}

impl Lab {
    /// Namespaces, the fake controller, a fabric from `fabric(controller_url)` with the
    /// given extra files, and the runtime serving it.
    pub async fn start(fabric: impl FnOnce(&str) -> String, files: &[(&str, &[u8])]) -> Lab {
        Lab::start_with(fabric, files, false).await
    }

    /// `controller_down`: the fabric names a port where no controller listens yet
    /// ([`Lab::controller_up`] starts one there); `mock` is then an idle stand-in.
    pub async fn start_with(
        fabric: impl FnOnce(&str) -> String,
        files: &[(&str, &[u8])],
        controller_down: bool,
    ) -> Lab {
        let srv = unique();
        add_ns(&srv);
        sh(&format!(
            "ip -n {srv} link add br0 type bridge && ip -n {srv} addr add {SERVER}/24 dev br0 && \
             ip -n {srv} link set br0 up && ip -n {srv} route add 10.77.0.0/16 dev br0"
        ));
        let listener = in_ns(&srv, || std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let mock = start_mock_on(listener, None);
        let tmp = tempfile::tempdir().unwrap();
        let fabric_dir = tmp.path().join("fabric");
        std::fs::create_dir_all(fabric_dir.join("secrets")).unwrap();
        std::fs::write(fabric_dir.join("secrets/controller"), format!("{CONTROLLER_PW}\n")).unwrap();
        std::fs::write(fabric_dir.join("secrets/device"), format!("{DEVICE_PW}\n")).unwrap();
        std::fs::write(fabric_dir.join("secrets/root"), format!("{ROOT_PW}\n")).unwrap();
        for (name, bytes) in files {
            let p = fabric_dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let url = if controller_down {
            // A port that was free a moment ago; nothing listens on it until controller_up.
            let port = in_ns(&srv, || {
                std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
            });
            format!("http://127.0.0.1:{port}")
        } else {
            mock.url.clone()
        };
        std::fs::write(fabric_dir.join("fabric.kdl"), fabric(&url)).unwrap();
        let mut lab = Lab { srv, tmp, fabric_dir, mock, runtime: None, devices: Vec::new(), controller: url };
        lab.start_runtime();
        lab
    }

    fn start_runtime(&mut self) {
        let state = self.tmp.path().join("state");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.srv, env!("CARGO_BIN_EXE_ztp-runtime")])
            .arg(self.fabric_dir.join("fabric.kdl"))
            .arg("--state")
            .arg(&state)
            .args(["--dhcp-listen", &format!("{SERVER}:67"), "--tftp-listen", &format!("{SERVER}:69")])
            .args(["--http-listen", &format!("{SERVER}:80"), "--log-format", "json"])
            // Short controller timings so that retries take seconds.
            .envs([
                ("ZTP_AGENT_BACKOFF", "0.2"),
                ("ZTP_AGENT_BACKOFF_MAX", "1"),
                ("ZTP_AGENT_POLL", "0.1"),
                ("ZTP_AGENT_SETTLE", "1"),
                ("ZTP_AGENT_CONNECT_TIMEOUT", "1"),
                ("ZTP_AGENT_REQUEST_TIMEOUT", "2"),
                ("ZTP_AGENT_ATTEMPTS", "8"),
                ("ZTP_AGENT_WAIT", "30"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = self.tmp.path().join("runtime.log");
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(log).unwrap();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
        });
        self.runtime = Some(Killed(child));
        let t = Instant::now();
        while self.get("/healthz").0 != 200 {
            assert!(t.elapsed() < Duration::from_secs(30), "runtime not healthy: {}", self.runtime_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Start a controller at the fabric's controller URL after `delay` (on a thread, so
    /// that a device can be mid-journey meanwhile). The mock comes back on `tx`.
    pub fn controller_up(&self, delay: Duration) -> std::sync::mpsc::Receiver<Mock> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (srv, url, rt) = (self.srv.clone(), self.controller.clone(), tokio::runtime::Handle::current());
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let addr = url.trim_start_matches("http://").to_string();
            let listener = in_ns(&srv, move || std::net::TcpListener::bind(addr).unwrap());
            let _enter = rt.enter();
            let _ = tx.send(start_mock_on(listener, None));
        });
        rx
    }

    pub fn runtime_log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("runtime.log")).unwrap_or_default()
    }

    /// GET on the runtime, from inside the server namespace: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let path = path.to_string();
        in_ns(&self.srv, move || {
            ztp_runtime::emulate::status::get(format!("{SERVER}:80").parse().unwrap(), &path)
                .unwrap_or((0, String::new()))
        })
    }

    pub fn device_log(&self, ip: &str) -> Vec<String> {
        let (code, body) = self.get(&format!("/api/ztp/device/{ip}/log"));
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}: {}", e["kind"].as_str().unwrap_or(""), e["text"].as_str().unwrap_or("")))
            .collect()
    }

    pub fn status(&self, ip: &str) -> Value {
        let (code, body) = self.get(&format!("/api/ztp/device/status/{ip}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A device namespace cabled to the server bridge, with relay address `giaddr`.
    pub fn cable(&mut self, giaddr: &str) -> String {
        let ns = unique();
        add_ns(&ns);
        self.devices.push(ns.clone());
        let srv = &self.srv;
        sh(&format!(
            "ip link add {ns}a type veth peer name {ns}b && ip link set {ns}a netns {srv} && \
             ip link set {ns}b netns {ns} && ip -n {srv} link set {ns}a master br0 up && \
             ip -n {ns} link set {ns}b name eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} addr add {giaddr}/32 dev lo && \
             ip -n {ns} route add 10.77.0.0/24 dev eth0"
        ));
        ns
    }

    /// Start `ztp-emulate` in a fresh device namespace and return at once (the namespace
    /// goes with the lab).
    /// The child is the emulator itself (`ip netns exec` execs it), in a process group
    /// of its own.
    pub fn spawn(&mut self, giaddr: &str, args: &[&str]) -> Killed {
        use std::os::unix::process::CommandExt;
        let ns = self.cable(giaddr);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_ztp-emulate")])
            .args(["--server", SERVER, "--relay", giaddr])
            .args(args)
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Killed(child)
    }

    /// Run `ztp-emulate` in a fresh device namespace behind relay `giaddr`.
    pub async fn emulate(&mut self, giaddr: &str, args: &[&str]) -> Run {
        let ns = self.cable(giaddr);
        let record = self.tmp.path().join(format!("{ns}.json"));
        let mut cmd = Command::new("timeout");
        // Its own process group: whatever timeout signals stays away from the test's.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["300", "ip", "netns", "exec", &ns, env!("CARGO_BIN_EXE_ztp-emulate")])
            .args(["--server", SERVER, "--relay", giaddr, "--wait", "60", "--script-timeout", "120"])
            .args(args)
            .arg("--record")
            .arg(&record);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("--- ztp-emulate {}\n{stdout}{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        // Gone with its relay address, so the next device can use the same giaddr.
        del_ns(&ns);
        self.devices.retain(|d| *d != ns);
        let record = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        assert!(
            record.is_object(),
            "ztp-emulate wrote no --record (lab directory still there: {}):\n{stdout}\n{}",
            self.tmp.path().exists(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every command a script called was stubbed or exists: none went missing.
        for boot in record["boots"].as_array().into_iter().flatten() {
            let output = boot["output"].as_str().unwrap_or_default();
            assert!(!output.contains("command not found"), "a script called a missing command:\n{output}");
            eprintln!("--- script output (boot {}):\n{output}", boot["boot"]);
        }
        Run { ok: out.status.success(), stdout, record }
    }
}

pub fn fabric_dir(lab: &Lab) -> &Path {
    &lab.fabric_dir
}

/// PIDs of processes whose command line is exactly `argv` (ours: unique arguments).
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want = argv.iter().map(|a| format!("{a}\0")).collect::<String>();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// Wait up to `within` for `f` to hold.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
