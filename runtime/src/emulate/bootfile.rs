//! Where each NOS finds its boot file in the ACK, how it fetches it, and the checks it
//! makes before running it (reference/nos-dhcp.md, "Server options read", "Fetch and
//! script"). Fetches go through curl (TFTP or HTTP), bound to the leased address.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use dhcproto::v4::{DhcpOption, OptionCode};
use md5::{Digest, Md5};
use ztpc::platform::Platform;

use super::device::{Device, mac_text};
use super::dhcp::Lease;

fn text(lease: &Lease, code: OptionCode) -> Option<String> {
    let bytes = match lease.ack.opts().get(code)? {
        DhcpOption::TFTPServerName(b) | DhcpOption::BootfileName(b) | DhcpOption::VendorExtensions(b) => {
            b.clone()
        }
        DhcpOption::Unknown(u) => u.data().to_vec(),
        _ => return None,
    };
    Some(String::from_utf8_lossy(&bytes).trim_end_matches('\0').to_string())
}

fn tftp_server(lease: &Lease) -> Option<String> {
    match lease.ack.opts().get(OptionCode::TFTPServerAddress) {
        Some(DhcpOption::TFTPServerAddress(a)) => Some(a.to_string()),
        _ => text(lease, OptionCode::TFTPServerName)
            .or_else(|| (!lease.ack.siaddr().is_unspecified()).then(|| lease.ack.siaddr().to_string())),
    }
}

/// Option 43 sub-options (1-byte code, 1-byte length), Junos' vendor space.
fn junos_suboptions(lease: &Lease) -> Vec<(u8, String)> {
    let Some(DhcpOption::VendorExtensions(b)) = lease.ack.opts().get(OptionCode::VendorExtensions) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= b.len() {
        let (code, len) = (b[i], b[i + 1] as usize);
        let Some(v) = b.get(i + 2..i + 2 + len) else { break };
        out.push((code, String::from_utf8_lossy(v).into_owned()));
        i += 2 + len;
    }
    out
}

fn join(scheme: &str, server: &str, port: Option<&str>, name: &str) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{server}{port}/{}", name.trim_start_matches('/'))
}

/// The boot file's URL, as this NOS builds it from the ACK.
pub fn url(p: Platform, lease: &Lease) -> Result<String, String> {
    let missing = |what: &str| format!("the ACK has no {what}: a {p} device would not start ZTP");
    match p {
        // 43.1 config-file-name; server in 150 or 66; 43.3 transfer mode (none: TFTP).
        Platform::Junos | Platform::JunosEvo => {
            let subs = junos_suboptions(lease);
            let get = |c: u8| subs.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone());
            let name = get(1).ok_or_else(|| missing("option 43 sub-option 1 (config-file-name)"))?;
            let server = tftp_server(lease).ok_or_else(|| missing("file server (option 150 or 66)"))?;
            let mode = get(3).unwrap_or_else(|| "tftp".into());
            let port = get(5);
            Ok(join(&mode, &server, port.as_deref().filter(|_| mode == "http"), &name))
        }
        // 67 is a URL, or a name on the TFTP server in 66.
        Platform::Eos => {
            let name = text(lease, OptionCode::BootfileName).ok_or_else(|| missing("option 67"))?;
            if name.contains("://") {
                return Ok(name);
            }
            let server = tftp_server(lease).ok_or_else(|| missing("option 66"))?;
            Ok(join("tftp", &server, None, &name))
        }
        // 66 (or 150) + 67 with the full path; HTTP when 66 is "http://...".
        Platform::Nxos => {
            let name = text(lease, OptionCode::BootfileName).ok_or_else(|| missing("option 67"))?;
            let server = tftp_server(lease).ok_or_else(|| missing("option 66 or 150"))?;
            if server.starts_with("http://") {
                return Ok(format!("{}/{}", server.trim_end_matches('/'), name.trim_start_matches('/')));
            }
            Ok(join("tftp", &server, None, &name))
        }
        // 67 (a ZTP JSON) wins over 239 (a script URL).
        Platform::Sonic => {
            if let Some(json) = text(lease, OptionCode::BootfileName) {
                return Err(format!(
                    "option 67 ({json}) names a SONiC ZTP JSON; the emulator runs option 239 scripts only"
                ));
            }
            text(lease, OptionCode::Unknown(239)).ok_or_else(|| missing("option 239"))
        }
        Platform::Cumulus => text(lease, OptionCode::Unknown(239)).ok_or_else(|| missing("option 239")),
    }
}

/// The HTTP headers this NOS sends with its boot file request.
fn headers(d: &Device) -> Vec<String> {
    let mac = mac_text(&d.mac);
    match d.platform {
        Platform::Eos => vec![
            format!("X-Arista-SystemMAC: {mac}"),
            format!("X-Arista-ModelName: {}", d.model),
            format!("X-Arista-Serial: {}", d.serial),
            "X-Arista-HardwareVersion: 01.00".into(),
            format!("X-Arista-SoftwareVersion: {}", d.version),
            "X-Arista-Architecture: i386".into(),
        ],
        Platform::Nxos => vec![
            "User-Agent: cisco-nxos".into(),
            format!("X-Vendor-SystemMAC: {mac}"),
            format!("X-Vendor-ModelName: {}", d.model),
            format!("X-Vendor-Serial: {}", d.serial),
            format!("X-Vendor-SoftwareVersion: {}", d.version),
        ],
        Platform::Sonic => vec![
            "User-Agent: SONiC-ZTP/0.1".into(),
            format!("PRODUCT-NAME: {}", d.model),
            format!("SERIAL-NUMBER: {}", d.serial),
            format!("BASE-MAC-ADDRESS: {}", mac.to_uppercase()),
            format!("SONiC-VERSION: {}", d.version),
        ],
        Platform::Cumulus => vec![
            "User-Agent: CumulusLinux-AutoProvision/0.4".into(),
            "CUMULUS-ARCH: x86_64".into(),
            format!("CUMULUS-BUILD: {}", d.version),
            format!("CUMULUS-PRODUCTNAME: {}", d.model),
            format!("CUMULUS-SERIAL: {}", d.serial),
            format!("CUMULUS-BASE-MAC: {mac}"),
            format!("CUMULUS-MGMT-MAC: {mac}"),
            format!("CUMULUS-VERSION: {}", d.version),
            "CUMULUS-PROV-COUNT: 0".into(),
            "CUMULUS-PROV-MAX: 32".into(),
        ],
        Platform::Junos | Platform::JunosEvo => Vec::new(),
    }
}

/// Fetch `url` into `dest` from address `from` with the NOS's headers.
pub fn fetch(d: &Device, url: &str, from: Ipv4Addr, dest: &Path) -> Result<u64, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-f", "-m", "60", "--retry", "2", "--interface", &from.to_string(), "-o"])
        .arg(dest);
    if url.starts_with("http") {
        for h in headers(d) {
            cmd.arg("-H").arg(h);
        }
    }
    cmd.arg("--").arg(url);
    let out = cmd.output().map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("fetching {url} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    std::fs::metadata(dest).map(|m| m.len()).map_err(|e| e.to_string())
}

/// MD5 the way POAP checks it: over the file with every `#md5sum` line deleted.
pub fn poap_md5(script: &[u8]) -> String {
    let mut h = Md5::new();
    for line in script.split_inclusive(|b| *b == b'\n') {
        if !line.starts_with(b"#md5sum") {
            h.update(line);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The checks the NOS makes before it runs the file; Ok(what was checked).
pub fn check(p: Platform, script: &[u8]) -> Result<String, String> {
    let first = script.split(|b| *b == b'\n').next().map(String::from_utf8_lossy).unwrap_or_default();
    let text = String::from_utf8_lossy(script);
    if text.contains("\r\n") {
        return Err("the script has CRLF line ends: the interpreter would not be found".into());
    }
    match p {
        Platform::Junos | Platform::JunosEvo => {
            let allowed = ["#!/bin/sh", "#!/usr/libexec/ui/cscript", "#!/usr/bin/python"];
            if !allowed.iter().any(|a| first.starts_with(a)) {
                return Err(format!(
                    "first line `{first}` is no script interpreter Junos runs: taken as config"
                ));
            }
            if p == Platform::JunosEvo && !first.contains("python3") && first.contains("python") {
                return Err("Junos EVO 23.2+ has no Python 2: `#!/usr/bin/python` fails".into());
            }
            Ok(format!("interpreter {first}"))
        }
        Platform::Nxos => {
            let line = text
                .lines()
                .find(|l| l.starts_with("#md5sum="))
                .ok_or("no #md5sum line: POAP refuses the script")?;
            let want = line.trim_start_matches("#md5sum=").trim_matches('"');
            let got = poap_md5(script);
            if want != got {
                return Err(format!("#md5sum is {want} but the script's MD5 is {got}: POAP refuses it"));
            }
            Ok(format!("#md5sum {got} verified"))
        }
        Platform::Cumulus => {
            if !text.contains("CUMULUS-AUTOPROVISIONING") {
                return Err("no CUMULUS-AUTOPROVISIONING in the script: Cumulus refuses it".into());
            }
            Ok("CUMULUS-AUTOPROVISIONING present".into())
        }
        Platform::Eos | Platform::Sonic => {
            if !first.starts_with("#!") {
                return Err("no #! line: the file would not be executed".into());
            }
            Ok(format!("interpreter {first}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{Message, UnknownOption};

    fn lease(opts: Vec<DhcpOption>) -> Lease {
        let mut ack = Message::default();
        for o in opts {
            ack.opts_mut().insert(o);
        }
        Lease { address: Ipv4Addr::new(10, 0, 0, 9), prefix: 24, ack }
    }

    fn golden(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../golden/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn junos_builds_its_url_from_option_43_and_150() {
        let mut subs = vec![1, 12];
        subs.extend_from_slice(b"ztp-junos.sh");
        let l = lease(vec![
            DhcpOption::VendorExtensions(subs.clone()),
            DhcpOption::TFTPServerAddress(Ipv4Addr::new(10, 0, 0, 5)),
        ]);
        assert_eq!(url(Platform::Junos, &l).unwrap(), "tftp://10.0.0.5/ztp-junos.sh");
        subs.extend_from_slice(&[3, 4, b'h', b't', b't', b'p', 5, 4, b'8', b'0', b'8', b'0']);
        let l =
            lease(vec![DhcpOption::VendorExtensions(subs), DhcpOption::TFTPServerName(b"10.0.0.5".to_vec())]);
        assert_eq!(url(Platform::Junos, &l).unwrap(), "http://10.0.0.5:8080/ztp-junos.sh");
        assert!(url(Platform::Junos, &lease(vec![])).unwrap_err().contains("sub-option 1"));
    }

    #[test]
    fn eos_nxos_sonic_and_cumulus_read_their_options() {
        let l = lease(vec![
            DhcpOption::BootfileName(b"devices/spine1.sh".to_vec()),
            DhcpOption::TFTPServerName(b"10.0.0.5".to_vec()),
        ]);
        assert_eq!(url(Platform::Eos, &l).unwrap(), "tftp://10.0.0.5/devices/spine1.sh");
        assert_eq!(url(Platform::Nxos, &l).unwrap(), "tftp://10.0.0.5/devices/spine1.sh");
        let u = "http://10.0.0.5/ztp-sonic.sh";
        let l = lease(vec![DhcpOption::Unknown(UnknownOption::new(OptionCode::Unknown(239), u.into()))]);
        assert_eq!(url(Platform::Sonic, &l).unwrap(), u);
        assert_eq!(url(Platform::Cumulus, &l).unwrap(), u);
        assert!(url(Platform::Eos, &l).is_err(), "EOS does not read 239");
    }

    #[test]
    fn the_nos_checks_accept_the_golden_scripts_and_refuse_broken_ones() {
        let nxos = golden("dc1/tftp/ztp-nxos.py");
        assert!(check(Platform::Nxos, &nxos).unwrap().contains("verified"));
        let mut tampered = nxos.clone();
        tampered.extend_from_slice(b"# one more line\n");
        assert!(check(Platform::Nxos, &tampered).unwrap_err().contains("POAP refuses"));
        // The script's own .md5 file agrees with POAP's rule.
        let md5 = String::from_utf8(golden("dc1/tftp/ztp-nxos.py.md5")).unwrap();
        assert!(md5.contains(&poap_md5(&nxos)), "{md5}");

        let cumulus = golden("dc1/tftp/ztp-cumulus.sh");
        assert!(check(Platform::Cumulus, &cumulus).is_ok());
        assert!(check(Platform::Cumulus, b"#!/bin/bash\nexit 0\n").is_err());
        assert!(check(Platform::Junos, &golden("dc1/tftp/ztp-junos.sh")).is_ok());
        assert!(check(Platform::JunosEvo, &golden("dc1/tftp/ztp-junos-evo.py")).is_ok());
        assert!(
            check(Platform::JunosEvo, b"#!/usr/bin/python\nprint(1)\n").unwrap_err().contains("Python 2")
        );
        assert!(check(Platform::Junos, b"system { host-name x; }\n").is_err());
        assert!(check(Platform::Sonic, b"#!/bin/bash\r\nexit 0\r\n").unwrap_err().contains("CRLF"));
    }
}
