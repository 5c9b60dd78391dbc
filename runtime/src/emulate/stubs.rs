//! The NOS commands the bootstrap scripts call, stubbed (files in `stubs/`): they answer
//! from the device's facts as the NOS would and record what they were asked to do
//! (install an image, reboot, set a password ...) in `commands.log`. Installed into the
//! device directory's `bin/` (and `py/` for NX-OS's `cli` Python module), which the
//! sandbox puts first on PATH.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ztpc::platform::Platform;

use super::device::{Device, mac_text};

const PRELUDE: &str = include_str!("stubs/prelude.sh");
const COMMON: &[(&str, &str)] = &[
    ("reboot", include_str!("stubs/reboot")),
    ("chpasswd", include_str!("stubs/chpasswd")),
    ("useradd", include_str!("stubs/useradd")),
    ("usermod", include_str!("stubs/usermod")),
    ("logger", include_str!("stubs/logger")),
];
const JUNOS_CLI: &str = include_str!("stubs/junos-cli");
const FASTCLI: &str = include_str!("stubs/FastCli");
const NXOS_CLI_PY: &str = include_str!("stubs/nxos_cli.py");
const SONIC: &[(&str, &str)] = &[
    ("decode-syseeprom", include_str!("stubs/decode-syseeprom")),
    ("sonic-cfggen", include_str!("stubs/sonic-cfggen")),
    ("show", include_str!("stubs/show")),
    ("sonic-installer", include_str!("stubs/sonic-installer")),
];
const CUMULUS: &[(&str, &str)] = &[
    ("decode-syseeprom", include_str!("stubs/decode-syseeprom")),
    ("onie-install", include_str!("stubs/onie-install")),
    ("nv", include_str!("stubs/nv")),
];

/// The management port each NOS reports its address on.
pub fn mgmt_interface(p: Platform) -> &'static str {
    match p {
        Platform::Junos => "em0",
        Platform::JunosEvo => "re0:mgmt-0",
        Platform::Eos => "Management1",
        Platform::Nxos => "mgmt0",
        Platform::Sonic | Platform::Cumulus => "eth0",
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

fn shquote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Write the stubs for `d`'s NOS and this boot's facts into `dir`.
pub fn install(dir: &Path, d: &Device, ip: Ipv4Addr, prefix: u8, hostname: &str) -> Result<(), String> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    write(&bin.join(".prelude"), PRELUDE, 0o644)?;
    let mut files: Vec<(&str, &str)> = COMMON.to_vec();
    match d.platform {
        Platform::Junos | Platform::JunosEvo => files.push(("cli", JUNOS_CLI)),
        Platform::Eos => files.push(("FastCli", FASTCLI)),
        Platform::Nxos => {
            let py = dir.join("py");
            std::fs::create_dir_all(&py).map_err(|e| e.to_string())?;
            write(&py.join("cli.py"), NXOS_CLI_PY, 0o644)?;
        }
        Platform::Sonic => files.extend_from_slice(SONIC),
        Platform::Cumulus => files.extend_from_slice(CUMULUS),
    }
    for (name, text) in files {
        write(&bin.join(name), text, 0o755)?;
    }
    let mac = mac_text(&d.mac);
    let facts = [
        ("SERIAL", d.serial.as_str()),
        ("MODEL", d.model.as_str()),
        ("VERSION", d.version.as_str()),
        ("MAC", mac.as_str()),
        ("IP", &ip.to_string()),
        ("PREFIX", &prefix.to_string()),
        ("MGMT_IF", mgmt_interface(d.platform)),
        ("HOSTNAME_", hostname),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}\n", shquote(v)))
    .collect::<String>();
    write(&dir.join("facts.env"), &facts, 0o644)?;
    let json = serde_json::json!({
        "serial": d.serial, "model": d.model, "version": d.version, "mac": mac,
        "ip": ip.to_string(), "prefix": prefix, "hostname": hostname,
    });
    write(&dir.join("facts.json"), &json.to_string(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::NXOS_CLI_PY;

    /// A failed `copy http://...` raises the CLI's error carrying "% Copy failed" (what
    /// the POAP script reports), not a Python formatting error from the stub itself.
    #[test]
    fn a_failed_nxos_copy_is_the_clis_error() {
        if std::process::Command::new("python3").arg("-V").output().is_err() {
            if std::env::var("ZTP_REQUIRE_ORACLES").as_deref() == Ok("1") {
                panic!("python3 is not installed and ZTP_REQUIRE_ORACLES=1");
            }
            eprintln!("SKIPPED: python3 is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("facts.json"), "{}").unwrap();
        let module = NXOS_CLI_PY.replace("Z = \"/run/ztp-emulate\"", &format!("Z = {:?}", dir.path()));
        assert_ne!(module, NXOS_CLI_PY, "the stub's directory is set in one place");
        std::fs::write(dir.path().join("cli.py"), module).unwrap();
        // Port 1 on loopback: connection refused at once.
        let probe = "import sys; sys.path.insert(0, sys.argv[1]); import cli\n\
                     try:\n    cli.cli('copy http://127.0.0.1:1/x volatile:y vrf management')\n\
                     except cli.cmd_exec_error as e:\n    print('CLI ERROR ' + str(e))\n";
        let out = std::process::Command::new("python3").args(["-c", probe]).arg(dir.path()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("CLI ERROR % Copy failed: "),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
