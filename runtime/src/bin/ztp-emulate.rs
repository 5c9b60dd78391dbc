//! `ztp-emulate`: play one switch against a ZTP server, from power-on to managed.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ztp_runtime::emulate::device::{self, Device};
use ztp_runtime::emulate::dhcp::Relay;
use ztp_runtime::emulate::journey::{Journey, Options, Outcome};
use ztpc::platform::Platform;

#[derive(Parser, Debug)]
#[command(
    name = "ztp-emulate",
    // --version is the device's running release (the interface the issue fixes).
    disable_version_flag = true,
    // A later option wins (scripts that wrap the emulator can override their defaults).
    args_override_self = true,
    about = "Play one switch of a NOS against a ZTP server, from power-on to completed",
    long_about = "Play one switch against a ZTP server (ztp-runtime), to rehearse a fabric before the \
hardware arrives. The emulator: relays a DHCP DISCOVER/REQUEST from GIADDR (binding GIADDR:67, as a \
relay does) with the NOS's own client identifiers (options 60/61/77/12); puts the leased address on the \
interface that reaches the server and routes the server from it; fetches the boot file the way the NOS \
does (TFTP from option 43/66/150, or the option 239 URL); checks it as the NOS does (#md5sum, \
CUMULUS-AUTOPROVISIONING, #!); runs the REAL script in a throw-away overlay of / with the NOS commands \
stubbed (they answer from --serial/--model/--version and record what they were asked); follows a reboot \
into the new image by running ZTP again; and waits for the runtime's status API to say completed \
(exit 0) or failed (exit 1). Every step is printed.\n\n\
Needs: root in a network namespace of its own (it adds addresses and routes there and mounts in a \
private mount namespace), GIADDR an address of that namespace, and curl, iproute2 and util-linux \
(unshare, mount, chroot) installed; python3 for the Python scripts (NX-OS, Junos EVO).",
    after_help = "Examples:\n  ip netns exec dev1 ztp-emulate --server 10.1.101.12 --relay 10.1.102.1 --platform junos \\\n      --serial WS3718350110 --remote-id mgmt-sw1 --circuit-id ge-0/0/1\n  ip netns exec dev2 ztp-emulate --server 10.1.101.12 --relay 10.1.101.1 --platform eos \\\n      --mac 52:54:00:6f:ff:4f --serial JPE12345678 --version 4.29.2F --next-version 4.30.1F"
)]
struct Cli {
    /// The ZTP server's address (DHCP on port 67, HTTP status API on --http-port).
    #[arg(long, value_name = "IP")]
    server: Ipv4Addr,
    /// The relay address (giaddr): bound on port 67 in this namespace.
    #[arg(long, value_name = "GIADDR")]
    relay: Ipv4Addr,
    /// The NOS: junos, junos-evo, eos, nxos, sonic or cumulus.
    #[arg(long, value_name = "P", value_parser = parse_platform)]
    platform: Platform,
    /// The management MAC (default: a random locally administered one).
    #[arg(long, value_name = "M", value_parser = device::parse_mac)]
    mac: Option<[u8; 6]>,
    /// The serial number (default: derived from the MAC).
    #[arg(long, value_name = "S")]
    serial: Option<String>,
    /// The hardware model (default: a common model of the NOS).
    #[arg(long, value_name = "M")]
    model: Option<String>,
    /// The running release (default: a current release of the NOS).
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// The release an image installed by the script boots into (default: the release
    /// from ztp.json's `<nos>-versions` that the image's file name contains).
    #[arg(long, value_name = "V")]
    next_version: Option<String>,
    /// Option 82 remote-id the relay adds (with --circuit-id).
    #[arg(long, value_name = "R", requires = "circuit_id")]
    remote_id: Option<String>,
    /// Option 82 circuit-id the relay adds.
    #[arg(long, value_name = "C")]
    circuit_id: Option<String>,
    /// The ZTP server's HTTP port (status API).
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    http_port: u16,
    /// Put the leased address on this interface (default: the one routing to --server).
    #[arg(long, value_name = "IFACE")]
    interface: Option<String>,
    /// Seconds one run of the script may take.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    script_timeout: u64,
    /// Seconds to wait for the runtime to say completed or failed after the script.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    wait: u64,
    /// Give up after this many boots.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_boots: u32,
    /// Write the journey (leases, boot files, every stubbed command per boot) as JSON.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Work directory (stubs, the fetched script and its output); default: a temporary one.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
        format!("unknown platform `{s}` (one of: {})", names.join(", "))
    })
}

/// On Ctrl-C or SIGTERM, take the running script down too, then exit 130.
fn on_signal_kill_the_sandbox() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
            else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            ztp_runtime::emulate::sandbox::abandon();
            eprintln!("ztp-emulate: interrupted; the script run was killed");
            std::process::exit(130);
        });
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    on_signal_kill_the_sandbox();
    let mac = cli.mac.unwrap_or_else(|| {
        let mut m = [0u8; 6];
        fastrand::fill(&mut m);
        m[0] = (m[0] & 0xfc) | 0x02;
        m
    });
    let serial = cli.serial.unwrap_or_else(|| format!("EMU{:02X}{:02X}{:02X}", mac[3], mac[4], mac[5]));
    let p = cli.platform;
    let opts = Options {
        server: cli.server,
        http_port: cli.http_port,
        relay: Relay { giaddr: cli.relay, remote_id: cli.remote_id, circuit_id: cli.circuit_id },
        device: Device {
            platform: p,
            mac,
            serial,
            model: cli.model.unwrap_or_else(|| device::default_model(p).into()),
            version: cli.version.unwrap_or_else(|| device::default_version(p).into()),
        },
        next_version: cli.next_version,
        interface: cli.interface,
        work_dir: cli.work_dir,
        script_timeout: Duration::from_secs(cli.script_timeout),
        wait: Duration::from_secs(cli.wait),
        max_boots: cli.max_boots.max(1),
        record: cli.record,
    };
    let outcome = Journey::new(opts).run();
    if ztp_runtime::emulate::sandbox::interrupted() {
        // The signal thread exits 130 as soon as it has cleaned up.
        std::thread::sleep(Duration::from_secs(5));
        return ExitCode::from(130);
    }
    match outcome {
        Outcome::Completed => ExitCode::SUCCESS,
        Outcome::Failed(_) => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
